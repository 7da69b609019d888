//! hotmeter's own cost per exposition format (issue #14): the same 10,000
//! counter series (`id="0".."9999"`) written as text 0.0.4, text 1.0.0,
//! OpenMetrics 1.0.0 and protobuf, each into a buffer kept between scrapes;
//! and the cost of UTF-8 names: a family named `http.requests_total` under
//! [`NameValidation::Utf8`] written quoted (`allow-utf-8`) and escaped
//! (`underscores`, `values`), beside the legacy-named family.
//!
//! The goal: text 1.0.0 no slower than text 0.0.4 for legacy names (the
//! escaping decision is made once per family), and the UTF-8 cost stated.
//! Group ids read `render_formats/<legacy|utf8>/<format>`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hotmeter::expose::EscapingScheme;
use hotmeter::{Counter, NameValidation, Registry, StringFamily};
use hotmeter_exporter::{ExpositionFormat, Negotiated, encode_negotiated, encode_protobuf_escaped};

const SERIES: usize = 10_000;

fn registry(validation: NameValidation, name: &str) -> Registry {
    let r = Registry::builder().name_validation(validation).build().unwrap();
    // Room for every series (the default limit is 2,000).
    let fam = r.register((name, "Requests."), StringFamily::with_limit(&["id"], SERIES, Counter::new)).unwrap();
    for i in 0..SERIES {
        fam.with(&[&i.to_string()], |c| c.inc_by(i as u64 * 7)).unwrap();
    }
    r
}

fn render(r: &Registry, chosen: Negotiated, out: &mut Vec<u8>) {
    out.clear();
    match chosen.format {
        ExpositionFormat::Protobuf => encode_protobuf_escaped(r, chosen.escaping, out),
        _ => {
            encode_negotiated(r, chosen, out);
        }
    }
}

fn render_formats(c: &mut Criterion) {
    use EscapingScheme::*;
    use ExpositionFormat::*;
    let legacy = registry(NameValidation::Legacy, "http_requests_total");
    let utf8 = registry(NameValidation::Utf8, "http.requests_total");
    let cases: [(&str, &Registry, &str, Negotiated); 8] = [
        ("legacy", &legacy, "text_0.0.4", Negotiated::new(Text004, Underscores)),
        ("legacy", &legacy, "text_1.0.0", Negotiated::new(Text100, AllowUtf8)),
        ("legacy", &legacy, "openmetrics_1.0.0", Negotiated::new(OpenMetrics100, AllowUtf8)),
        ("legacy", &legacy, "protobuf", Negotiated::new(Protobuf, AllowUtf8)),
        ("utf8", &utf8, "text_1.0.0_allow-utf-8", Negotiated::new(Text100, AllowUtf8)),
        ("utf8", &utf8, "text_1.0.0_underscores", Negotiated::new(Text100, Underscores)),
        ("utf8", &utf8, "text_1.0.0_values", Negotiated::new(Text100, Values)),
        ("utf8", &utf8, "protobuf_underscores", Negotiated::new(Protobuf, Underscores)),
    ];
    for (names, r, format, chosen) in cases {
        let mut buf = Vec::new();
        render(r, chosen, &mut buf);
        // Every series is there before anything is timed.
        let needle: &[u8] = if chosen.format == Protobuf { b"9999" } else { b"id=\"9999\"" };
        assert!(buf.windows(needle.len()).any(|w| w == needle), "{names}/{format}: series 9999 missing");
        let mut g = c.benchmark_group(format!("render_formats/{names}"));
        g.sample_size(20);
        g.throughput(Throughput::Elements(SERIES as u64));
        g.bench_function(format, |b| {
            b.iter(|| {
                render(r, chosen, &mut buf);
                black_box(buf.len())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, render_formats);
criterion_main!(benches);
