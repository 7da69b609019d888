//! Where this crate's lock-free shared word gets its atomic: std's, or
//! loom's under `--cfg hotmeter_loom`, so the loom models in `loom-tests`
//! run the real [`SpaceLife`](crate::observation) protocol.
//!
//! Owns: that choice, and the models' handle on the real code
//! ([`__loom`](crate::__loom)). Must not: hold anything else; the queue's
//! lanes and the worker deques are crossbeam's, modelled by crossbeam.

#[cfg(hotmeter_loom)]
pub(crate) use loom::sync::atomic::AtomicU64;
#[cfg(not(hotmeter_loom))]
pub(crate) use std::sync::atomic::AtomicU64;
