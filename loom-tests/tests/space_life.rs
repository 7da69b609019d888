//! The worker pool's memory-space lifecycle word (`hotmeter-streaming`'s
//! `SpaceLife`): a space's series are removed only when nothing can record
//! into them any more, whatever a submission, a worker, a retirement and a
//! revival do meanwhile.
//!
//! The models run the real `SpaceLife` and mirror the pool's steps around
//! it, in the pool's order: a submission `enter`s (one hold), then inside
//! the queue's gate (a read lock) queues its observation and records its
//! outcome (accepted, or refused as retired: then it `leave`s its hold); a
//! worker takes the observation, records it processed, and `leave`s its
//! hold; the monitor, seeing the space drained, passes through the gate
//! (its write lock) and removes the series when `try_remove` marks the
//! space removed, reading their values once (the "last export"). No record
//! may land after that reading: a submission that finds the space removed
//! records nothing.
#![cfg(hotmeter_loom)]

use hotmeter_streaming::__loom::SpaceLife;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use loom::thread;

/// A space's series (one counter), its one lane slot, and what the
/// remover read when it removed them.
#[derive(Default)]
struct Space {
    life: SpaceLife,
    gate: loom::sync::RwLock<()>,
    series: AtomicU64,
    queued: AtomicBool,
    removed_with: AtomicU64,
    removed: AtomicBool,
}

const ACCEPTED: u64 = 1;
const REFUSED: u64 = 100;
const PROCESSED: u64 = 10_000;

impl Space {
    /// `queue::push`: a hold, then inside the gate the observation queued
    /// and the outcome recorded; the hold stays with an accepted one.
    fn submit(&self) {
        let entered = self.life.enter();
        let gate = self.gate.read().unwrap();
        match entered {
            Some(true) => {
                self.queued.store(true, Ordering::Release);
                self.series.fetch_add(ACCEPTED, Ordering::Relaxed);
                drop(gate);
            }
            Some(false) => {
                self.series.fetch_add(REFUSED, Ordering::Relaxed);
                drop(gate);
                self.life.leave(1);
            }
            None => {
                drop(gate);
                self.life.leave(1);
            }
        }
    }

    /// A worker: takes the observation if it is there, records it, gives
    /// its hold back (`release_holds`, after `batch_done`).
    fn work(&self) -> bool {
        // A compare-and-swap, not `swap`: under loom 0.7 a `swap` here was
        // seen to read `false` after a joined thread's `store(true)`.
        if self.queued.compare_exchange(true, false, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return false;
        }
        self.series.fetch_add(PROCESSED, Ordering::Relaxed);
        self.life.leave(1);
        true
    }

    /// The monitor's `tend_spaces`: removes the series once drained, after
    /// a pass through the gate (`ObservationQueue::barrier`) unless told to
    /// skip it.
    fn tend(&self, barrier: bool) {
        if self.removed.load(Ordering::Relaxed) || !self.life.is_drained() {
            return;
        }
        if barrier {
            drop(self.gate.write().unwrap());
        }
        if self.life.try_remove() {
            self.removed_with.store(self.series.load(Ordering::Relaxed), Ordering::Relaxed);
            self.removed.store(true, Ordering::Relaxed);
        }
    }

    /// After every thread joined: nothing recorded after the removal.
    fn check(&self) {
        if self.removed.load(Ordering::Relaxed) {
            let (at_removal, now) = (self.removed_with.load(Ordering::Relaxed), self.series.load(Ordering::Relaxed));
            assert_eq!(at_removal, now, "a record landed after the series were removed");
        }
    }
}

/// A submission and a worker racing a retirement and the remover (with
/// or without its pass through the gate); what no worker took yet is
/// processed afterwards, then the remover looks again. Returns the space
/// once every record was checked against the removal.
fn retirement_race(barrier: bool) -> Arc<Space> {
    let s = Arc::new(Space::default());
    let submitter = {
        let s = s.clone();
        thread::spawn(move || s.submit())
    };
    let worker = {
        let s = s.clone();
        thread::spawn(move || {
            s.work();
        })
    };
    s.life.retire();
    s.tend(barrier);
    submitter.join().unwrap();
    worker.join().unwrap();
    s.work();
    s.tend(barrier);
    s.check();
    s
}

/// A submission racing a retirement, a worker and the remover.
#[test]
fn retirement_racing_a_submission_and_a_worker_loses_no_record() {
    loom::model(|| {
        let s = retirement_race(true);
        assert!(s.removed.load(Ordering::Relaxed), "a drained retired space is removed");
    });
}

/// A revival racing the remover, both under the pool's space list lock
/// (as `memory_space` and `tend_spaces` take it): either the space is
/// removed and the revival finds it gone from the list (the name then
/// starts anew), or it is live again and not removed; and an observation
/// queued before the retirement is recorded before any removal.
#[test]
fn a_revival_and_the_remover_never_both_win() {
    loom::model(|| {
        let s = Arc::new(Space::default());
        let in_list = Arc::new(loom::sync::Mutex::new(true));
        s.submit();
        s.life.retire();
        let reviver = {
            let (s, in_list) = (s.clone(), in_list.clone());
            thread::spawn(move || {
                let listed = in_list.lock().unwrap();
                *listed && s.life.revive()
            })
        };
        let worker = {
            let s = s.clone();
            thread::spawn(move || {
                s.work();
            })
        };
        {
            let mut listed = in_list.lock().unwrap();
            if *listed && s.life.is_drained() && {
                drop(s.gate.write().unwrap());
                s.life.try_remove()
            } {
                s.removed_with.store(s.series.load(Ordering::Relaxed), Ordering::Relaxed);
                s.removed.store(true, Ordering::Relaxed);
                *listed = false;
            }
        }
        let revived = reviver.join().unwrap();
        worker.join().unwrap();
        s.check();
        let removed = s.removed.load(Ordering::Relaxed);
        assert!(revived != removed, "revived {revived}, removed {removed}: exactly one wins");
        if revived {
            s.submit();
            assert_eq!(s.series.load(Ordering::Relaxed) % REFUSED, 2 * ACCEPTED, "a revived space accepts again");
        }
    });
}

/// The same protocol with a remover that skips the pass through the gate:
/// loom finds a worker finishing the observation and the remover reading
/// the series before the submission recorded its acceptance.
#[test]
#[should_panic(expected = "a record landed after the series were removed")]
fn removal_without_the_gate_barrier_is_caught() {
    loom::model(|| {
        retirement_race(false);
    });
}
