//! # hotmeter-format
//!
//! The exposition formats of a [`hotmeter::Registry`], as pure functions
//! from one walk of the registry to bytes in a caller-owned buffer: no
//! sockets, no threads, no runtime. The pull exporter (`hotmeter-exporter`)
//! serves them and re-exports this crate's API; the push crate
//! (`hotmeter-push`) writes Pushgateway bodies with the same text encoder.
//!
//! | item | what it is |
//! |---|---|
//! | [`encode_text`], [`TEXT_CONTENT_TYPE`] | Prometheus text format 0.0.4 |
//! | [`encode_openmetrics`], [`OPENMETRICS_CONTENT_TYPE`] | OpenMetrics 1.0 text |
//! | [`encode_protobuf`], [`encode_protobuf_escaped`], [`PROTOBUF_CONTENT_TYPE`] | the Prometheus protobuf format (length-delimited `MetricFamily`), the one that carries native histograms |
//! | [`negotiate`], [`Offered`], [`Negotiated`], [`ExpositionFormat`], [`encode_negotiated`] | content negotiation over text 0.0.4 and 1.0.0, OpenMetrics 0.0.1 and 1.0.0 and protobuf, with `escaping=`; the chosen format written with UTF-8 names quoted or escaped |
//! | [`FamilyNames`] | a family's names as written: as registered when legacy, escaped by a scheme otherwise (every format and push transport) |
//! | [`wire`] | the protobuf wire format written straight into a buffer (tags, varints, lengths settled after their message), shared by every protobuf body hotmeter writes |
//! | [`encode_json`], [`write_json_string`], [`write_json_number`], [`write_json_object`] | a JSON snapshot with quantile estimates, and its value writers |
//!
//! ## Quick start
//! ```
//! let registry = hotmeter::Registry::new();
//! let jobs = registry.counter("jobs_total", "Jobs run.")?;
//! jobs.inc();
//! let mut out = Vec::new();
//! hotmeter_format::encode_text(&registry, &mut out);
//! assert_eq!(String::from_utf8(out).unwrap(), "# HELP jobs_total Jobs run.\n# TYPE jobs_total counter\njobs_total 1\n");
//! # Ok::<(), hotmeter::RegistryError>(())
//! ```
//!
//! ## Features
//! `protobuf` (default): the protobuf encoder (`encode_protobuf`,
//! `encode_protobuf_escaped`, `PROTOBUF_CONTENT_TYPE`). It writes the wire
//! format itself and needs no protobuf crate (tests decode it with
//! `hotmeter-testkit`'s prost types). Negotiation is the same with or
//! without it: a server that does not write protobuf offers
//! [`Offered::TEXT`], and [`encode_negotiated`] writes text 0.0.4 if asked
//! for protobuf anyway, as it always has.

#![forbid(unsafe_code)]
// The table above links the protobuf items; a build without them shows
// those names as plain text.
#![cfg_attr(not(feature = "protobuf"), allow(rustdoc::broken_intra_doc_links))]

mod json;
mod names;
mod negotiate;
mod openmetrics;
#[cfg(feature = "protobuf")]
mod protobuf;
mod text;
pub mod wire;

pub use json::{JSON_CONTENT_TYPE, encode_json, write_json_number, write_json_object, write_json_string};
pub use names::FamilyNames;
pub use negotiate::{ExpositionFormat, Negotiated, Offered, TEXT_CONTENT_TYPE, negotiate};
#[allow(deprecated)]
pub use openmetrics::wants_openmetrics;
pub use openmetrics::{OPENMETRICS_CONTENT_TYPE, encode_openmetrics};
#[cfg(feature = "protobuf")]
pub use protobuf::{PROTOBUF_CONTENT_TYPE, encode_protobuf, encode_protobuf_escaped};
pub use text::{encode_negotiated, encode_text};
