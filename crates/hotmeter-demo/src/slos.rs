//! The demo's service-level objectives: one definition feeds the in-process
//! report (`GET /slos`, the status line) and the generated `alerts/slo.yml`.
//!
//! Owns: the three objectives. Must not: spell a metric name (they come
//! from the crates' `metrics` constants) or evaluate anything.

use std::time::Duration;

use hotmeter_checkpoint::metrics as checkpoint;
use hotmeter_slo::{Indicator, Slo};
use hotmeter_streaming::metrics as streaming;

/// Where each generated alert's `runbook_url` points.
pub(crate) const RUNBOOK: &str = "https://example.invalid/hotmeter/blob/main/docs/operations.md";

/// Checkpoint availability >= 99.5%, P95 write latency <= 400 ms and P95
/// observation latency <= 100 ms, each over 5 minutes.
pub(crate) fn definitions() -> Vec<Slo> {
    let five_minutes = Duration::from_secs(300);
    vec![
        Slo {
            name: "checkpoint-availability".into(),
            description: "At least 99.5% of checkpoint writes succeed".into(),
            indicator: Indicator::Ratio {
                metric: checkpoint::CHECKPOINT_WRITES.into(),
                label: "status".into(),
                good: vec!["success".into()],
            },
            objective: 0.995,
            window: five_minutes,
        },
        Slo {
            name: "checkpoint-write-latency".into(),
            description: "P95 checkpoint write latency is at most 400 ms".into(),
            indicator: Indicator::Latency {
                histogram: checkpoint::CHECKPOINT_WRITE_DURATION.into(),
                threshold: 0.4,
                bounds: checkpoint::CHECKPOINT_WRITE_BUCKETS.to_vec(),
            },
            objective: 0.95,
            window: five_minutes,
        },
        Slo {
            name: "observation-latency".into(),
            description: "P95 enqueue-to-processed latency is at most 100 ms".into(),
            indicator: Indicator::Latency {
                histogram: streaming::OBSERVATION_LATENCY.into(),
                threshold: 0.1,
                bounds: streaming::latency_bounds(),
            },
            objective: 0.95,
            window: five_minutes,
        },
    ]
}
