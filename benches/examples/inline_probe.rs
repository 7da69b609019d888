//! What a dependent crate's `cargo build --release` gets of hotmeter's hot
//! paths: each `probe_*` function below is one recording call, compiled in
//! this crate (a dependent of hotmeter) and kept out of line under its own
//! symbol, so `benches/inline-check.sh` can disassemble it and list every
//! call it still makes into hotmeter. Built by that script with the default
//! release profile (no LTO, 16 codegen units); `main` only keeps the probes
//! linked and exercises each once.

use hotmeter::{
    Buckets, Counter, Family, FloatCounter, Gauge, Histogram, IntGauge, NativeHistogram, NativeOpts, Pinned,
    SingleCounter, StringFamily, TracedCounter,
};

hotmeter::label_enum! {
    /// A typed label.
    pub enum Status: "status" { Ok = "ok", Error = "error" }
}

macro_rules! probes {
    ($($name:ident($($arg:ident: $ty:ty),*) $body:block)*) => {$(
        /// One recording call, out of line under its own symbol.
        #[unsafe(no_mangle)]
        #[inline(never)]
        pub fn $name($($arg: $ty),*) $body
    )*};
}

probes! {
    probe_counter_inc(c: &Counter) { c.inc() }
    probe_counter_inc_by(c: &Counter, n: u64) { c.inc_by(n) }
    probe_single_counter_inc(c: &SingleCounter) { c.inc() }
    probe_float_counter_inc_by(c: &FloatCounter, v: f64) { c.inc_by(v) }
    probe_traced_counter_inc(c: &TracedCounter) { c.inc() }
    probe_gauge_set(g: &Gauge, v: f64) { g.set(v) }
    probe_gauge_add(g: &Gauge, v: f64) { g.add(v) }
    probe_int_gauge_add(g: &IntGauge, v: i64) { g.add(v) }
    probe_histogram_observe(h: &Histogram, v: f64) { h.observe(v) }
    probe_native_histogram_observe(h: &NativeHistogram, v: f64) { h.observe(v) }
    probe_typed_family_get(f: &Family<Status, Counter>, s: Status) { f.get(s).inc() }
    probe_string_family_with(f: &StringFamily<Counter>, v: &str) { let _ = f.with(&[v], |c| c.inc()); }
    probe_string_family_with_two(f: &StringFamily<Counter>, a: &str, b: &str) { let _ = f.with(&[a, b], |c| c.inc()); }
    probe_pinned_with(f: &Pinned<'_, Counter>, v: &str) { let _ = f.with(&[v], |c| c.inc()); }
}

fn main() {
    let counter = Counter::new();
    probe_counter_inc(&counter);
    probe_counter_inc_by(&counter, 2);
    probe_single_counter_inc(&SingleCounter::new());
    probe_float_counter_inc_by(&FloatCounter::new(), 0.5);
    probe_traced_counter_inc(&TracedCounter::new());
    let gauge = Gauge::new();
    probe_gauge_set(&gauge, 1.0);
    probe_gauge_add(&gauge, 1.0);
    probe_int_gauge_add(&IntGauge::new(), 1);
    probe_histogram_observe(&Histogram::new(Buckets::default()), 0.1);
    probe_native_histogram_observe(&NativeHistogram::new(NativeOpts::default()), 0.1);
    probe_typed_family_get(&Family::new(Counter::new), Status::Ok);
    let one = StringFamily::new(&["k"], Counter::new);
    probe_string_family_with(&one, "a");
    probe_string_family_with_two(&StringFamily::new(&["k", "j"], Counter::new), "a", "b");
    probe_pinned_with(&one.pinned(), "a");
    assert_eq!(counter.get(), 3);
}
