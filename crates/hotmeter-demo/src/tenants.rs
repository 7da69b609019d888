//! The memory spaces the generator submits to, fixed and churning
//! (`--tenant-churn`).
//!
//! Owns: one session per space, each space's share of the traffic, the
//! churn schedule (a space `churn-N` appears every 1/RATE s, takes traffic
//! for [`CHURN_LIFE`] such periods, then falls silent), and bringing back a
//! space the pool retired for idleness when traffic for it comes again.
//! Must not: count traffic (the generator does) or retire a space that is
//! not silent: without `--idle-timeout` a silent churning space is retired
//! at once, with it the pool retires it when the timeout has passed.

use std::time::{Duration, Instant};

use hotmeter_streaming::{EnqueueError, MemorySpace, Priority, RejectReason, Session, WorkerPool};

use crate::traffic::ChurnCounts;

/// How many churn periods a churning space takes traffic for: about this
/// many are live at once.
pub(crate) const CHURN_LIFE: u32 = 4;

/// A churning space's share of the traffic, as a weight beside the fixed
/// spaces' (the busiest has 50).
const CHURN_WEIGHT: u64 = 5;

struct Tenant {
    session: Session,
    weight: u64,
    /// When a churning space falls silent (`None`: a fixed space).
    silent_at: Option<Instant>,
}

struct Churn {
    every: Duration,
    next_at: Instant,
    retire_at_once: bool,
}

/// The spaces traffic goes to, with their weights.
pub(crate) struct Tenants<'p> {
    pool: &'p WorkerPool,
    tenants: Vec<Tenant>,
    churn: Option<Churn>,
    counts: ChurnCounts,
}

impl<'p> Tenants<'p> {
    /// The fixed `spaces` with their `weights`, and churn at `churn_rate`
    /// spaces per second from `now`; silent churning spaces are retired at
    /// once unless the pool retires idle spaces itself (`idle_timeout`).
    pub(crate) fn new(
        pool: &'p WorkerPool,
        spaces: &[MemorySpace],
        weights: &[u64],
        churn_rate: Option<f64>,
        idle_timeout: Option<Duration>,
        now: Instant,
    ) -> Self {
        let tenants = spaces
            .iter()
            .zip(weights)
            .map(|(space, &weight)| Tenant { session: pool.session(space), weight, silent_at: None })
            .collect();
        let churn = churn_rate.map(|rate| Churn {
            every: Duration::from_secs_f64(1.0 / rate),
            next_at: now,
            retire_at_once: idle_timeout.is_none(),
        });
        Tenants { pool, tenants, churn, counts: ChurnCounts::default() }
    }

    /// Adds the churning spaces due by `now` and silences those whose life
    /// ended.
    pub(crate) fn tick(&mut self, now: Instant) {
        let Some(churn) = &mut self.churn else { return };
        let pool = self.pool;
        let counts = &mut self.counts;
        self.tenants.retain(|t| match t.silent_at {
            Some(at) if at <= now => {
                counts.silenced += 1;
                if churn.retire_at_once {
                    pool.retire_memory_space(t.session.space());
                }
                false
            }
            _ => true,
        });
        while churn.next_at <= now {
            let born = churn.next_at;
            churn.next_at += churn.every;
            let name = format!("churn-{}", counts.appeared + counts.refused + 1);
            match pool.memory_space(&name) {
                Ok(space) => {
                    counts.appeared += 1;
                    let silent_at = Some(born + churn.every * CHURN_LIFE);
                    self.tenants.push(Tenant { session: pool.session(&space), weight: CHURN_WEIGHT, silent_at });
                }
                Err(_) => counts.refused += 1,
            }
        }
    }

    /// Sum of the weights.
    pub(crate) fn total_weight(&self) -> u64 {
        self.tenants.iter().map(|t| t.weight).sum::<u64>().max(1)
    }

    /// The space a pick in `0..total_weight()` falls on.
    pub(crate) fn pick(&self, mut pick: u64) -> usize {
        self.tenants
            .iter()
            .position(|t| {
                pick < t.weight || {
                    pick -= t.weight;
                    false
                }
            })
            .unwrap_or(0)
    }

    /// Submits to space `i`. When the pool had retired the space (idle
    /// for `--idle-timeout`), the space is registered again (revived, or
    /// anew once its series were removed) and the observation submitted
    /// once more: traffic for a tenant brings it back.
    pub(crate) fn submit(
        &mut self,
        i: usize,
        priority: Priority,
        key: u64,
        payload: Vec<u8>,
    ) -> Result<(), EnqueueError> {
        let t = &mut self.tenants[i];
        match t.session.submit(priority, key, payload) {
            Err(e) if e.reason() == RejectReason::Retired => {
                let Ok(space) = self.pool.memory_space(t.session.space().name()) else { return Err(e) };
                self.counts.brought_back += 1;
                t.session = self.pool.session(&space);
                let o = e.into_observation();
                t.session.submit(o.priority, o.key, o.payload)
            }
            other => other,
        }
    }

    pub(crate) fn counts(&self) -> ChurnCounts {
        self.counts
    }
}
