//! Zero heap allocations on every recording path, proven with a counting
//! global allocator. Only allocations made by the measuring thread count,
//! so other tests running in parallel cannot disturb the result.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use hotmeter::{
    Buckets, Counter, Family, Gauge, Histogram, IntGauge, SingleCounter, StringFamily, Summary, SummaryOpts,
};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call unchanged to the system allocator; the only
// addition is a thread-local counter that does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

hotmeter::label_enum! {
    /// Status.
    pub enum Status: "status" { Success = "success", Error = "error" }
}

#[test]
fn recording_never_allocates() {
    let counter = Counter::new();
    let single = SingleCounter::new();
    let gauge = Gauge::new();
    let int_gauge = IntGauge::new();
    let small = Histogram::with_default_buckets();
    let large = Histogram::new(Buckets::exponential(1e-6, 1.5, 40).unwrap());
    let summary = Summary::new(SummaryOpts::default()).unwrap();
    let typed: Family<Status, Counter> = Family::new(Counter::new);
    let strings = StringFamily::new(&["space", "op"], Counter::new);
    let capped = StringFamily::with_limit(&["id"], 1, SingleCounter::new);
    // Warm-up outside the measurement: the thread's slot, the first insert
    // of each label set (the documented cold path), the overflow route, and
    // each histogram's shard for this thread (made at the thread's first
    // observation, documented).
    counter.inc();
    small.observe(0.0);
    strings.with(&["tenant-a", "write"], |c| c.inc()).unwrap();
    capped.with(&["first"], |c| c.inc()).unwrap();
    let kept = strings.get(&["tenant-a", "write"]).unwrap();
    // The first exemplar creates the histogram's slots (documented); later
    // ones are copies into them.
    let trace = hotmeter::TraceId::new("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    large.observe_with_exemplar(0.1, &trace);
    let traced = hotmeter::TracedCounter::new();

    let n = allocations_during(|| {
        for i in 0..10_000u64 {
            counter.inc();
            counter.inc_by(3);
            single.inc();
            gauge.set(i as f64);
            gauge.add(0.5);
            gauge.dec();
            int_gauge.inc();
            int_gauge.sub(2);
            small.observe(i as f64 * 1e-4);
            small.observe(f64::NAN);
            small.observe(f64::INFINITY);
            large.observe(i as f64 * 1e-5);
            large.observe_with_exemplar(i as f64 * 1e-5, &trace);
            traced.inc();
            traced.inc_with_exemplar(2, &trace);
            summary.observe(i as f64 * 1e-4);
            typed.get(if i % 2 == 0 { Status::Success } else { Status::Error }).inc();
            strings.with(&["tenant-a", "write"], |c| c.inc()).unwrap();
            kept.inc();
            // Beyond the limit: routed to the overflow series, no insert.
            capped.with(&["another"], |c| c.inc()).unwrap();
            drop(small.start_timer());
        }
    });
    assert_eq!(n, 0, "recording allocated {n} times");
    // The measurement itself must be able to see an allocation.
    assert!(allocations_during(|| drop(std::hint::black_box(vec![1u8; 16]))) > 0);
    assert_eq!(typed.get(Status::Error).get(), 5_000);
    assert_eq!(capped.overflowed(), 10_000);
}
