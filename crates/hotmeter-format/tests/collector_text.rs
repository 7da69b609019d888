//! A collector's series in the text formats: label values escaped as any
//! family's, constant labels first, a histogram's buckets cumulative.

use hotmeter::expose::MetricType;
use hotmeter::{Collector, CollectorSeries, Registry};
use hotmeter_format::{encode_openmetrics, encode_text};

struct Disks;

impl Collector for Disks {
    fn collect(&self, out: &mut CollectorSeries<'_>) {
        out.float_counter(&["/dev/\"a\"\n"], 1.5).unwrap();
        out.float_counter(&["C:\\"], 2.0).unwrap();
    }
}

struct Sizes;

impl Collector for Sizes {
    fn collect(&self, out: &mut CollectorSeries<'_>) {
        out.histogram(&[], &[1.0, 10.0], &[2, 3, 1], 17.0).unwrap();
    }
}

#[test]
fn collector_series_are_written_like_any_family() {
    let registry = Registry::builder().const_label("host", "h1").build().unwrap();
    registry
        .register_collector(("disk_read_bytes_total", "Bytes read."), MetricType::Counter, &["device"], Disks)
        .unwrap();
    registry.register_collector(("batch_size", "Batch sizes."), MetricType::Histogram, &[], Sizes).unwrap();
    let mut text = Vec::new();
    encode_text(&registry, &mut text);
    let text = String::from_utf8(text).unwrap();
    for line in [
        "# TYPE disk_read_bytes_total counter\n",
        "disk_read_bytes_total{host=\"h1\",device=\"/dev/\\\"a\\\"\\n\"} 1.5\n",
        "disk_read_bytes_total{host=\"h1\",device=\"C:\\\\\"} 2.0\n",
        "batch_size_bucket{host=\"h1\",le=\"1.0\"} 2\n",
        "batch_size_bucket{host=\"h1\",le=\"10.0\"} 5\n",
        "batch_size_bucket{host=\"h1\",le=\"+Inf\"} 6\n",
        "batch_size_sum{host=\"h1\"} 17.0\n",
        "batch_size_count{host=\"h1\"} 6\n",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    let mut om = Vec::new();
    encode_openmetrics(&registry, &mut om);
    let om = String::from_utf8(om).unwrap();
    assert!(om.contains("disk_read_bytes_total{host=\"h1\",device=\"C:\\\\\"} 2.0\n"), "{om}");
    assert!(om.ends_with("# EOF\n"), "{om}");
}
