//! The single place that names std or loom synchronisation primitives.
//!
//! Owns: the atomics, `Arc`, `Mutex`, the spin hint, the per-thread slot
//! index and cache padding.
//! Everything else in the crate imports them from here, so the same
//! production code runs under the loom model checker when built with
//! `RUSTFLAGS="--cfg hotmeter_loom"` and the `loom` feature.
//!
//! Must not: contain metric logic. It only switches implementations.

#[cfg(all(hotmeter_loom, not(feature = "loom")))]
compile_error!(
    "`--cfg hotmeter_loom` needs the `loom` feature of hotmeter: run the models with \
     `RUSTFLAGS=\"--cfg hotmeter_loom\" cargo test -p loom-tests --release`"
);

#[cfg(not(hotmeter_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(hotmeter_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(hotmeter_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(hotmeter_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

/// `Arc` is std's in every build: reference counts of handles are not what
/// the models check (and loom's `Arc` cannot hold slices); the atomics and
/// mutexes inside are loom's under the cfg.
pub(crate) use std::sync::Arc;

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

/// The calling thread's slot if it has one, else `usize::MAX`: for hot
/// paths that treat "no slot yet" like "slot out of range" and go to a cold
/// path, which then calls [`thread_slot`].
#[inline(always)]
pub(crate) fn thread_slot_or_max() -> usize {
    slot::raw()
}

#[cfg(not(hotmeter_loom))]
mod slot {
    use std::cell::Cell;
    use std::sync::Mutex;

    /// Not assigned yet.
    const UNASSIGNED: usize = usize::MAX;
    /// Given back during thread exit: any later recording on this thread
    /// (from another thread-local's destructor) uses the shared shard.
    const RELEASED: usize = usize::MAX >> 1;

    struct Slots {
        next: usize,
        free: Vec<usize>,
    }

    static SLOTS: Mutex<Slots> = Mutex::new(Slots { next: 0, free: Vec::new() });

    thread_local! {
        // `const` initialiser and no destructor: the hot-path access is one
        // thread-pointer relative load, with no lazy-init check.
        static SLOT: Cell<usize> = const { Cell::new(UNASSIGNED) };
        // Touched once, on assignment, so its destructor gives the slot back.
        static RELEASE: Release = const { Release };
    }

    struct Release;

    impl Drop for Release {
        fn drop(&mut self) {
            let slot = SLOT.with(|s| s.replace(RELEASED));
            if slot < RELEASED {
                let mut slots = SLOTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                slots.free.push(slot);
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
        let v = {
            let mut slots = SLOTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // Lowest free slot first, so live threads stay densely numbered.
            match slots.free.iter().enumerate().min_by_key(|&(_, &v)| v).map(|(i, _)| i) {
                Some(i) => slots.free.swap_remove(i),
                None => {
                    slots.next += 1;
                    slots.next - 1
                }
            }
        };
        s.set(v);
        // If the thread is already being torn down the destructor cannot be
        // registered: then never hand the slot back (it leaks one number).
        let _ = RELEASE.try_with(|_| ());
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
            // thread), which is what the real allocator gives too. Its
            // ThreadId only shows that number through Debug: "ThreadId(N)".
            let id = format!("{:?}", loom::thread::current().id());
            let v = id.trim_start_matches("ThreadId(").trim_end_matches(')').parse().unwrap_or(0);
            s.set(v);
            v
        })
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
        use std::sync::OnceLock;
        static SHARDS: OnceLock<usize> = OnceLock::new();
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
/// values never share a line (false sharing).
///
/// - x86_64: 128 bytes. Lines are 64 bytes, but the spatial prefetcher pulls
///   pairs of lines, so neighbours 64 bytes apart still interfere.
/// - aarch64: 128 bytes. Several big cores (Apple M-series, Neoverse) use
///   128-byte lines or pair prefetch.
/// - everything else: 64 bytes, the common line size.
#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), repr(align(128)))]
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), repr(align(64)))]
#[derive(Debug, Default)]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}
