//! The single place that names std or loom synchronisation primitives.
//!
//! Owns: the atomics, `Arc`, `Mutex`, the epoch reclamation crate, the spin hint, the per-thread slot
//! index and cache padding.
//! Everything else in the crate imports them from here, so the same
//! production code runs under the loom model checker when built with
//! `RUSTFLAGS="--cfg hotmeter_loom --cfg crossbeam_loom"` and the `loom` feature.
//!
//! Must not: contain metric logic. It only switches implementations.

#[cfg(all(hotmeter_loom, not(feature = "loom")))]
compile_error!(
    "`--cfg hotmeter_loom` needs the `loom` feature of hotmeter: run the models with \
     `RUSTFLAGS=\"--cfg hotmeter_loom --cfg crossbeam_loom\" cargo test -p loom-tests --release`"
);

#[cfg(all(hotmeter_loom, not(crossbeam_loom)))]
compile_error!(
    "`--cfg hotmeter_loom` needs `--cfg crossbeam_loom` too, so that the epoch reclamation runs on loom: \
     `RUSTFLAGS=\"--cfg hotmeter_loom --cfg crossbeam_loom\"`"
);

/// Epoch-based reclamation (the string index frees removed entries
/// through it). The same crate in every build: under
/// `--cfg crossbeam_loom` (with the `loom` feature) it runs on loom's
/// atomics itself.
pub(crate) use crossbeam_epoch as epoch;

#[cfg(not(hotmeter_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(hotmeter_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(hotmeter_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(hotmeter_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

/// `Arc` is std's in every build: reference counts of handles are not what
/// the models check (and loom's `Arc` cannot hold slices); the atomics and
/// mutexes inside are loom's under the cfg.
pub(crate) use std::sync::Arc;

/// How many handles share `arc`'s value ([`Metric::handles`](crate::expose::Metric::handles)),
/// read so that whatever a handle recorded before it was dropped is visible
/// to the caller's reads after this one: `Arc::strong_count` is a `Relaxed`
/// load, and a dropped handle's decrement is a `Release`, so an `Acquire`
/// fence after the load completes the pair (as `Arc::get_mut` does).
pub(crate) fn handle_count<T: ?Sized>(arc: &Arc<T>) -> usize {
    let n = Arc::strong_count(arc);
    std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
    n
}

#[cfg(hotmeter_loom)]
std::thread_local! {
    /// The first protocol violation the real code noticed in the running
    /// model (loom runs a model's threads on one OS thread).
    static MODEL_VIOLATION: std::cell::RefCell<Option<&'static str>> = const { std::cell::RefCell::new(None) };
}

/// Loom builds: notes a violation the real code sees (never a panic there:
/// a panic inside a model of the epoch code aborts in loom's cleanup); the
/// models read it back after loom returns.
#[cfg(hotmeter_loom)]
pub(crate) fn note_model_violation(what: &'static str) {
    MODEL_VIOLATION.with(|v| {
        v.borrow_mut().get_or_insert(what);
    });
}

/// Loom builds: takes the violation noted since the last call.
#[cfg(hotmeter_loom)]
pub(crate) fn take_model_violation() -> Option<&'static str> {
    MODEL_VIOLATION.with(|v| v.borrow_mut().take())
}

/// Hint to the CPU that we are spinning; yields to the scheduler under loom
/// so that models with spin loops terminate.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(not(hotmeter_loom))]
    std::hint::spin_loop();
    #[cfg(hotmeter_loom)]
    loom::thread::yield_now();
}

/// Locks a mutex, recovering the data if a previous holder panicked.
///
/// Every structure we guard stays valid after a panic mid-update (counts may
/// be one short, never corrupt), so poisoning carries no information here.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(not(hotmeter_loom))]
    {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    #[cfg(hotmeter_loom)]
    {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A small index for the calling thread, unique among live threads,
/// assigned once on first use and given back when the thread exits.
///
/// Counters shard with `thread_slot() & mask`; histograms give each of the
/// first [`exclusive_shard_count`] slots a shard of its own, written by that
/// one thread only. Slots are the lowest free numbers, so a pool's threads
/// get `0, 1, 2, …` and spread over distinct shards.
#[inline]
pub(crate) fn thread_slot() -> usize {
    slot::get()
}

/// Runs `f` when the calling thread exits, from a thread-local destructor
/// registered now: destructors run in reverse order of registration, so
/// after those of thread-locals first used later, such as the thread's
/// slot. For tests of recording at thread exit.
#[cfg(all(test, not(hotmeter_loom)))]
pub(crate) fn at_thread_exit(f: impl FnOnce() + 'static) {
    struct AtExit(Option<Box<dyn FnOnce()>>);
    impl Drop for AtExit {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    thread_local! {
        static AT_EXIT: std::cell::RefCell<Vec<AtExit>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    AT_EXIT.with(|a| a.borrow_mut().push(AtExit(Some(Box::new(f)))));
}

/// The calling thread's slot if it has one, else `usize::MAX`: for hot
/// paths that treat "no slot yet" like "slot out of range" and go to a cold
/// path, which then calls [`thread_slot`].
#[inline(always)]
pub(crate) fn thread_slot_or_max() -> usize {
    slot::raw()
}

/// The thread-slot allocator: each live thread holds a distinct number, the
/// lowest free one when it asks, and gives it back when it exits (a
/// thread-local destructor calls [`release`](Self::release)). Production
/// uses one `static` instance; the loom models run this same code on an
/// instance of their own (loom's `lazy_static!` cannot be reached from
/// thread-local destructors at the end of a model's execution), releasing
/// explicitly where a thread would exit.
pub(crate) struct SlotAllocator {
    slots: Mutex<Slots>,
}

struct Slots {
    /// Numbers handed out so far (the next new one).
    next: usize,
    /// Numbers given back by threads that exited.
    free: Vec<usize>,
}

impl SlotAllocator {
    #[cfg(not(hotmeter_loom))]
    const fn new() -> Self {
        Self { slots: Mutex::new(Slots { next: 0, free: Vec::new() }) }
    }

    #[cfg(hotmeter_loom)]
    pub(crate) fn new() -> Self {
        Self { slots: Mutex::new(Slots { next: 0, free: Vec::new() }) }
    }

    /// The lowest free number, so live threads stay densely numbered.
    pub(crate) fn acquire(&self) -> usize {
        let mut slots = lock(&self.slots);
        match slots.free.iter().enumerate().min_by_key(|&(_, &v)| v).map(|(i, _)| i) {
            Some(i) => slots.free.swap_remove(i),
            None => {
                slots.next += 1;
                slots.next - 1
            }
        }
    }

    /// Gives `slot` back for the next thread.
    pub(crate) fn release(&self, slot: usize) {
        lock(&self.slots).free.push(slot);
    }
}

#[cfg(not(hotmeter_loom))]
mod slot {
    use super::SlotAllocator;
    use std::cell::Cell;

    /// Not assigned yet.
    const UNASSIGNED: usize = usize::MAX;
    /// Given back during thread exit: any later recording on this thread
    /// (from another thread-local's destructor) uses the shared shard.
    const RELEASED: usize = usize::MAX >> 1;

    static SLOTS: SlotAllocator = SlotAllocator::new();

    thread_local! {
        // `const` initialiser and no destructor: the hot-path access is one
        // thread-pointer relative load, with no lazy-init check.
        static SLOT: Cell<usize> = const { Cell::new(UNASSIGNED) };
        // Set once, on assignment, so its destructor gives the slot back.
        static RELEASE: Release = const { Release(Cell::new(UNASSIGNED)) };
    }

    /// Holds its own copy of the slot number: thread-locals are destroyed
    /// in no particular order, so `SLOT` may be gone when this runs.
    struct Release(Cell<usize>);

    impl Drop for Release {
        fn drop(&mut self) {
            let slot = self.0.replace(RELEASED);
            if slot < RELEASED {
                // Later recording on this thread (from another thread-local's
                // destructor) must not use the slot it no longer holds.
                let _ = SLOT.try_with(|s| s.set(RELEASED));
                SLOTS.release(slot);
            }
        }
    }

    #[inline(always)]
    pub(super) fn raw() -> usize {
        SLOT.with(Cell::get)
    }

    #[inline]
    pub(super) fn get() -> usize {
        SLOT.with(|s| {
            let v = s.get();
            if v != UNASSIGNED { v } else { assign(s) }
        })
    }

    #[cold]
    #[inline(never)]
    fn assign(s: &Cell<usize>) -> usize {
        let v = SLOTS.acquire();
        s.set(v);
        // If the thread is already being torn down the destructor cannot be
        // registered: then never hand the slot back (it leaks one number).
        let _ = RELEASE.try_with(|r| r.0.set(v));
        v
    }
}

#[cfg(hotmeter_loom)]
mod slot {
    use std::cell::Cell;

    loom::thread_local! {
        static SLOT: Cell<usize> = Cell::new(usize::MAX);
    }

    pub(super) fn raw() -> usize {
        SLOT.with(Cell::get)
    }

    pub(super) fn get() -> usize {
        SLOT.with(|s| {
            let v = s.get();
            if v != usize::MAX {
                return v;
            }
            // loom numbers a model's live threads densely from 0 (its main
            // thread), as the real allocator numbers live threads (whose
            // reuse the `slots` model checks on `SlotAllocator` itself).
            // Its ThreadId only shows that number through Debug.
            let id = format!("{:?}", loom::thread::current().id());
            let v = id.trim_start_matches("ThreadId(").trim_end_matches(')').parse().unwrap_or(0);
            s.set(v);
            v
        })
    }
}

/// A number unique in this process, for registration identities (see
/// `Desc`). std's atomic even under loom: it is a process-wide counter that
/// no model checks (loom atomics cannot live in a `static`), and uniqueness
/// needs nothing but the read-modify-write.
pub(crate) fn next_registration_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Process-wide immutable data computed once (default bucket bounds, the
/// shard count): std's `OnceLock` in every build, since loom objects cannot
/// live in a `static` and this data is never raced on by the structures
/// the models check. Shared structures use [`OnceLock`], which loom sees.
pub(crate) type StaticOnceLock<T> = std::sync::OnceLock<T>;

/// Once-initialised storage inside shared structures (string-family
/// segments and index generations, render caches, exemplar slots).
#[cfg(not(hotmeter_loom))]
pub(crate) use std::sync::OnceLock;

#[cfg(hotmeter_loom)]
pub(crate) use loom_once::OnceLock;

#[cfg(hotmeter_loom)]
mod loom_once {
    /// `std::sync::OnceLock` as loom sees it: a loom mutex guards the slot,
    /// so a model explores every interleaving of initialisation and reads
    /// with the same acquire/release edges std gives (`get` acquires what
    /// `set` released). The value is leaked so `get` can hand out a
    /// reference that outlives the guard; loom models are small.
    pub(crate) struct OnceLock<T: 'static> {
        slot: loom::sync::Mutex<Option<&'static T>>,
    }

    impl<T: 'static> OnceLock<T> {
        pub(crate) fn new() -> Self {
            Self { slot: loom::sync::Mutex::new(None) }
        }

        pub(crate) fn get(&self) -> Option<&T> {
            *super::lock(&self.slot)
        }

        pub(crate) fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
            let mut slot = super::lock(&self.slot);
            match *slot {
                Some(v) => v,
                None => {
                    let v: &'static T = Box::leak(Box::new(init()));
                    *slot = Some(v);
                    v
                }
            }
        }
    }

    impl<T: 'static> Default for OnceLock<T> {
        fn default() -> Self {
            Self::new()
        }
    }

    impl<T: std::fmt::Debug + 'static> std::fmt::Debug for OnceLock<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_tuple("OnceLock").field(&self.get()).finish()
        }
    }
}

/// How many histogram shards are owned by a single thread slot each;
/// threads with higher slots share one more shard, updated with atomic
/// read-modify-writes.
///
/// At least 16 (or the counters' shard count, if larger), at most 64. Under
/// loom: 2, so models with three threads exercise the shared shard too.
pub(crate) fn exclusive_shard_count() -> usize {
    #[cfg(not(hotmeter_loom))]
    {
        shard_count().max(16)
    }
    #[cfg(hotmeter_loom)]
    {
        2
    }
}

/// How many shards a sharded metric gets: the next power of two at or above
/// twice the available parallelism, clamped to `2..=64`.
///
/// Twice the cores, so that a pool somewhat larger than the machine still
/// spreads over distinct cache lines; at most 64 to bound memory.
pub(crate) fn shard_count() -> usize {
    #[cfg(not(hotmeter_loom))]
    {
        static SHARDS: StaticOnceLock<usize> = StaticOnceLock::new();
        *SHARDS.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
            (cores * 2).next_power_of_two().clamp(2, 64)
        })
    }
    #[cfg(hotmeter_loom)]
    {
        2
    }
}

/// Pads and aligns a value to the size of the cache-coherence unit, so two
/// values never share a line (false sharing): crossbeam's, which knows the
/// unit of every target it supports (128 bytes on x86_64, aarch64 and
/// powerpc64, where the spatial prefetcher or the line itself spans 128
/// bytes; 256 on s390x; 32 on arm, mips, riscv and sparc; 64 elsewhere),
/// rather than a table of our own. Alignment only: no atomics, so nothing
/// for loom to model.
pub(crate) use crossbeam_utils::CachePadded;
