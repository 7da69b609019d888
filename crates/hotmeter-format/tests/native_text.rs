//! A native histogram in the text formats: its classic buckets, or only
//! the `+Inf` bucket when it keeps none; exemplars in OpenMetrics.

use hotmeter::{Buckets, NativeOpts, Registry, TraceId};
use hotmeter_format::{encode_openmetrics, encode_text};

#[test]
fn native_histograms_show_their_classic_buckets_or_only_the_inf_bucket() {
    let r = Registry::new();
    let both =
        r.native_histogram("both_seconds", "B.", NativeOpts::new().classic(Buckets::new([0.5]).unwrap())).unwrap();
    let native = r.native_histogram("native_seconds", "N.", NativeOpts::new()).unwrap();
    both.observe(0.25);
    both.observe_with_exemplar(2.0, &TraceId::new("abc").unwrap());
    native.observe(0.25);
    let mut out = Vec::new();
    encode_text(&r, &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        concat!(
            "# HELP both_seconds B.\n# TYPE both_seconds histogram\n",
            "both_seconds_bucket{le=\"0.5\"} 1\nboth_seconds_bucket{le=\"+Inf\"} 2\n",
            "both_seconds_sum 2.25\nboth_seconds_count 2\n",
            "# HELP native_seconds N.\n# TYPE native_seconds histogram\n",
            "native_seconds_bucket{le=\"+Inf\"} 1\nnative_seconds_sum 0.25\nnative_seconds_count 1\n",
        )
    );
    let mut out = Vec::new();
    encode_openmetrics(&r, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("both_seconds_bucket{le=\"+Inf\"} 2 # {trace_id=\"abc\"} 2.0 "), "{text}");
}
