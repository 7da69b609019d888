//! The lock-free string index: [`StringIndex`], a read-optimised map from a
//! fixed number of string values to a value of any type, with a cardinality
//! limit, removal, idle expiry and (when asked) reclaimed memory.
//!
//! Owns: entry allocation and freeing, the open-addressing table of atomic
//! words and its rebuilds, the writers' lock, the live count, removal and
//! expiry of entries, and the label-value order of entries.
//! [`StringFamily`](crate::StringFamily) keeps its series here, and the
//! `metrics` facade backend keeps its handle cache here. Must not: take a
//! lock or allocate on the hit path (only the first insertion of a key,
//! `#[cold]`, locks and allocates), know anything about metrics, overflow
//! series or exposition. This is the one module of the crate with `unsafe`
//! code: dereferencing entry and table addresses read from atomic words.
//!
//! # The protocol
//! - Each entry is an allocation of its own. The table is an array of
//!   atomic words, `hash_hi16 | entry address` (0: empty, 1: tombstone),
//!   kept at most half full of entries and tombstones. A writer fills an
//!   entry, then publishes its word with `Release`; a reader probes with
//!   `Acquire` and so sees the entry whole. A rebuild fills a new table
//!   aside (live entries only) and publishes its address with `Release`.
//! - Writers (inserts, removals, expiry, rebuilds) are serialised by one
//!   mutex, never taken on the hit path. Removal marks the entry removed,
//!   turns its word into a tombstone and retires the entry; a rebuild
//!   retires the old table.
//! - Retired memory: an index that **reclaims** frees it through
//!   `crossbeam-epoch` (every lookup pins the epoch, so nothing is freed
//!   while a reader that could have seen it is still running); one that
//!   does not keeps it until the index drops, and then caps the entries it
//!   ever holds at twice its limit (its lookups pin nothing, which is why
//!   reclaiming is a choice: a pin costs a few nanoseconds).
//! - Expiry (reclaiming indexes only) is removal in two steps: the entry
//!   leaves the table with a fingerprint of its value, and waits until no
//!   reader that found it can still be running (a deferred epoch ticket).
//!   Then it is freed if its value still has that fingerprint, and put back
//!   (revived, value and all) if an update raced the expiry. A lookup of its
//!   key while it waits revives it too. An update is never lost to expiry.
//! - `live` counts entries in the table. It changes only under the
//!   writers' lock; increments are `Release` and the unlocked "full?" check
//!   loads it with `Acquire`, then looks the key up once more: a key
//!   inserted or revived by the writer that filled the index is found,
//!   never refused.
//! - A removed key that comes back is a new entry (its value made anew).
//!   Entry ids (unique per index, never reused) let walkers tell a new
//!   entry from an old one at the same address.

// The crate denies `unsafe`; this module alone needs it (see above).
#![allow(unsafe_code)]

use std::hash::BuildHasher;

use crate::error::LabelCountError;
use std::cell::UnsafeCell;
use std::mem::MaybeUninit;

use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Mutex, OnceLock, Ordering, epoch, lock};

/// Buckets in the smallest table.
const INDEX0: usize = 32;
/// Slots in the first slab segment; segment `k` holds `SEGMENT0 << k`.
const SEGMENT0: usize = 16;
/// Slab segments: enough for any number of entries memory allows.
const LEVELS: usize = 28;
/// The largest cardinality limit.
const MAX_LIMIT: usize = 1 << 24;
/// The bits of an index word that hold an entry's address.
const ADDRESS: u64 = (1 << 48) - 1;
/// The bits of an index word that hold the high bits of the key's hash.
const TAG: u64 = !ADDRESS;
/// An index word of a bucket never used.
const EMPTY: u64 = 0;
/// An index word of a bucket whose entry was removed: probes go on past it.
const TOMBSTONE: u64 = 1;

/// A concurrent map from `arity` string values to a `V`, read without locks.
///
/// The hit path hashes the values (foldhash, or a hash the caller already
/// has), probes an open-addressing table of atomic words, and compares the
/// values: no lock, no allocation, no reference-count traffic (and, in an
/// index that [reclaims](Self::reclaiming), one epoch pin). The first use
/// of a key takes the `#[cold]` path: a mutex that only inserts contend on,
/// the limit check, and the insert. At the limit (live entries) a new key
/// is refused (`None`), never evicting one.
///
/// # Examples
/// ```
/// let index: hotmeter::index::StringIndex<String> = hotmeter::index::StringIndex::with_limit(2, 100);
/// let hash = hotmeter::index::StringIndex::<String>::hash(&["GET", "/a"]);
/// let made = index.get_or_insert_with(hash, &["GET", "/a"], || "first".to_owned(), |v| v.clone())?;
/// assert_eq!(made.as_deref(), Some("first"));
/// let again = index.get_or_insert_with(hash, &["GET", "/a"], || unreachable!(), |v| v.len())?;
/// assert_eq!(again, Some(5));
/// assert_eq!(index.len(), 1);
/// # Ok::<(), hotmeter::LabelCountError>(())
/// ```
#[must_use]
pub struct StringIndex<V: Send + Sync + 'static> {
    inner: Arc<Inner<V>>,
}

impl<V: Send + Sync> Clone for StringIndex<V> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<V: Send + Sync> std::fmt::Debug for StringIndex<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StringIndex")
            .field("arity", &self.inner.arity)
            .field("len", &self.inner.live.load(Ordering::Relaxed))
            .field("limit", &self.inner.limit)
            .field("reclaiming", &self.inner.reclaim)
            .finish_non_exhaustive()
    }
}

struct Inner<V: Send + Sync + 'static> {
    arity: usize,
    limit: usize,
    /// Whether retired memory is freed (lookups pin the epoch) or kept.
    reclaim: bool,
    /// Where entries live.
    slab: Arc<Slab<V>>,
    /// The address of the current [`Table`].
    table: AtomicUsize,
    /// Entries in the table (not removed, not expiring).
    live: AtomicUsize,
    /// Expired entries waiting to be freed or taken back (the length of
    /// the writers' list, readable without the lock): while any wait, a
    /// lookup that misses at the limit takes the lock, since its key may be
    /// one of them.
    expiring: AtomicUsize,
    /// Serialises inserts, removals, expiry and rebuilds; never taken on
    /// the hit path.
    writers: Mutex<Writers<V>>,
}

/// The open-addressing table: index words, a power of two of them.
struct Table {
    words: Box<[AtomicU64]>,
    /// Loom builds only: set where production frees a retired table (whose
    /// memory the models then keep), so a model sees a lookup that reads a
    /// table after its free (loom does not track plain heap memory).
    /// A loom atomic, so the model sees the free and the lookup's last
    /// read as conflicting and tries both orders.
    #[cfg(hotmeter_loom)]
    freed: AtomicBool,
}

impl Table {
    fn new(len: usize) -> Self {
        Self {
            words: (0..len).map(|_| AtomicU64::new(EMPTY)).collect(),
            #[cfg(hotmeter_loom)]
            freed: AtomicBool::new(false),
        }
    }
}

/// Entry storage: slots in segments (`16 << k` slots each) that never move
/// and are freed only when the index and every deferred free are gone, so
/// an index's entries sit close together however the process allocates
/// around them (a lookup among many series misses the cache less), and a
/// freed entry's slot is used again.
struct Slab<V: 'static> {
    segments: [OnceLock<Box<[Slot<V>]>>; LEVELS],
    /// Slots whose entries were freed, ready for new ones. Its own lock,
    /// never held while calling into the epoch: deferred frees, which may
    /// run inside any pin, take it.
    free: Mutex<Vec<u32>>,
}

/// One slot: an entry or nothing, on a cache line of its own when the
/// entry fits one (a counter's does), so a lookup that reaches an entry
/// touches one line.
#[repr(align(64))]
struct Slot<V>(UnsafeCell<MaybeUninit<Entry<V>>>);

// SAFETY: a slot's entry is written once by the writer that allocated the
// slot (under the writers' lock, before it is published with `Release`),
// then only read through `&Entry<V>` until it is dropped by its sole
// owner (see `EntryPtr::free`); `Entry<V>` is `Sync` when `V` is.
unsafe impl<V: Send + Sync> Sync for Slot<V> {}

/// Where slot `i` lives: `(segment, offset)`.
#[inline]
fn slot_position(i: usize) -> (usize, usize) {
    let k = (usize::BITS - 1 - (i / SEGMENT0 + 1).leading_zeros()) as usize;
    (k, i - SEGMENT0 * ((1 << k) - 1))
}

impl<V: 'static> Slab<V> {
    /// Slot `i`, its segment made if need be; `None` past the last segment.
    fn slot(&self, i: usize) -> Option<&Slot<V>> {
        let (k, off) = slot_position(i);
        let segment = self
            .segments
            .get(k)?
            .get_or_init(|| (0..SEGMENT0 << k).map(|_| Slot(UnsafeCell::new(MaybeUninit::uninit()))).collect());
        segment.get(off)
    }

    /// The slot number of an entry in this slab.
    fn slot_of(&self, entry: EntryPtr<V>) -> Option<u32> {
        let at = entry.0.as_ptr() as usize;
        let size = std::mem::size_of::<Slot<V>>();
        for (k, segment) in self.segments.iter().enumerate() {
            let Some(segment) = segment.get() else { break };
            let start = segment.as_ptr() as usize;
            if at >= start && at < start + segment.len() * size {
                return u32::try_from(SEGMENT0 * ((1 << k) - 1) + (at - start) / size).ok();
            }
        }
        None
    }
}

/// An entry's address, as the writers keep it.
struct EntryPtr<V>(std::ptr::NonNull<Entry<V>>);

impl<V> Clone for EntryPtr<V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V> Copy for EntryPtr<V> {}

// SAFETY: an `EntryPtr` is only dereferenced as `&Entry<V>` (shared), and
// `Entry<V>` is `Send + Sync` when `V` is; freeing happens in one place,
// by whoever retired it, exactly once.
unsafe impl<V: Send + Sync> Send for EntryPtr<V> {}
// SAFETY: as for `Send`.
unsafe impl<V: Send + Sync> Sync for EntryPtr<V> {}

impl<V> EntryPtr<V> {
    fn address(self) -> u64 {
        self.0.as_ptr().expose_provenance() as u64
    }
}

/// Memory retired by an index that does not reclaim, freed when it drops.
enum Kept<V> {
    Entry(EntryPtr<V>),
    Table(usize),
}

/// An expired entry waiting until no reader that found it can still run.
struct Expiring<V> {
    entry: EntryPtr<V>,
    /// The fingerprint of its value when it expired.
    fingerprint: u64,
    /// Set by a deferred epoch function: every reader pinned before the
    /// entry left the table has unpinned.
    quiet: Arc<AtomicBool>,
}

struct Writers<V> {
    /// Slab slots ever handed out (the next new one).
    slots: usize,
    /// Buckets of the current table that are not empty (entries and
    /// tombstones).
    used: usize,
    /// Live entries sorted by key values.
    sorted: Vec<EntryPtr<V>>,
    /// Bumped by every change to the set of live entries (insert, revival,
    /// removal, expiry, clear), so a walker can tell that its copy is
    /// current.
    version: u64,
    /// The next entry id.
    next_id: u64,
    /// Entries allocated and not freed (live, expiring, kept).
    allocated: usize,
    /// Without reclamation: what was retired, freed when the index drops.
    kept: Vec<Kept<V>>,
    /// Expired entries not yet freed or revived.
    expiring: Vec<Expiring<V>>,
}

impl<V> Writers<V> {
    /// Where the expiring entry for `values` is listed, if it is.
    fn expiring_position(&self, hash: u64, values: &[&str]) -> Option<usize> {
        self.expiring.iter().position(|x| {
            // SAFETY: listed entries are allocated, and the caller holds
            // the writers' lock (`&self`), under which alone they are freed.
            let e = unsafe { x.entry.get() };
            e.hash == hash && e.matches(values)
        })
    }
}

/// One key and its value, in a slab slot of its own.
pub struct Entry<V> {
    /// The key's hash (as the index was given it).
    hash: u64,
    /// `id << 1 | removed`: the id is unique within the index and never
    /// reused; the flag is set when the entry leaves the table.
    state: AtomicU64,
    /// The values, concatenated: one comparison, and no allocation when
    /// short.
    key: KeyBytes,
    /// Where each value but the last ends in `key` (the last ends at its
    /// end): no allocation for one value.
    ends: Box<[u32]>,
    value: V,
}

/// Keys up to this many bytes live inside the entry.
const INLINE_KEY: usize = 22;

/// A key's bytes, inside the entry when short (most label values), so a
/// lookup compares them without following another pointer.
enum KeyBytes {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<str>),
}

impl KeyBytes {
    fn new(values: &[&str]) -> Self {
        let len: usize = values.iter().map(|v| v.len()).sum();
        if len <= INLINE_KEY {
            let mut bytes = [0u8; INLINE_KEY];
            let mut at = 0;
            for v in values {
                bytes[at..at + v.len()].copy_from_slice(v.as_bytes());
                at += v.len();
            }
            KeyBytes::Inline { len: len as u8, bytes }
        } else {
            KeyBytes::Heap(values.concat().into())
        }
    }

    #[inline(always)]
    fn as_bytes(&self) -> &[u8] {
        match self {
            KeyBytes::Inline { len, bytes } => &bytes[..*len as usize],
            KeyBytes::Heap(s) => s.as_bytes(),
        }
    }

    /// The key as text. It was made by concatenating `&str`s, so it is
    /// UTF-8; checked anyway, as no `unsafe` is wanted here (reads for
    /// rendering and label values only, never on the hit path).
    fn as_str(&self) -> &str {
        match self {
            KeyBytes::Inline { len, bytes } => std::str::from_utf8(&bytes[..*len as usize]).unwrap_or(""),
            KeyBytes::Heap(s) => s,
        }
    }
}

impl<V> std::fmt::Debug for Entry<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries((0..=self.ends.len()).map(|i| self.key_value(i))).finish()
    }
}

impl<V> Entry<V> {
    fn new(hash: u64, id: u64, values: &[&str], value: V) -> Self {
        let ends = values
            .iter()
            .take(values.len().saturating_sub(1))
            .scan(0usize, |end, v| {
                *end += v.len();
                Some(*end as u32)
            })
            .collect();
        Self { hash, state: AtomicU64::new(id << 1), key: KeyBytes::new(values), ends, value }
    }

    /// The value stored for this key.
    pub fn value(&self) -> &V {
        &self.value
    }

    /// The entry's id: unique within its index and never reused, so a new
    /// entry for a key that was removed has another id than the old one.
    pub fn id(&self) -> u64 {
        self.state.load(Ordering::Relaxed) >> 1
    }

    /// The key's values concatenated, and where each value but the last
    /// ends (the last ends at the end of the text).
    pub fn joined_key(&self) -> (&str, &[u32]) {
        (self.key.as_str(), &self.ends)
    }

    /// Key value `i`, or `""` past the end.
    pub fn key_value(&self, i: usize) -> &str {
        let key = self.key.as_str();
        let start = if i == 0 { 0 } else { self.ends.get(i - 1).map_or(key.len(), |&e| e as usize) };
        let end = self.ends.get(i).map_or(if i <= self.ends.len() { key.len() } else { start }, |&e| e as usize);
        key.get(start..end).unwrap_or("")
    }

    /// Whether the entry left the table (removed or expiring).
    pub fn is_removed(&self) -> bool {
        self.state.load(Ordering::Relaxed) & 1 == 1
    }

    fn set_removed(&self, removed: bool) {
        if removed {
            self.state.fetch_or(1, Ordering::Relaxed);
        } else {
            self.state.fetch_and(!1, Ordering::Relaxed);
        }
    }

    /// Whether this entry's values are exactly `values` (whose count the
    /// index has checked against its arity).
    #[inline]
    fn matches(&self, values: &[&str]) -> bool {
        let key = self.key.as_bytes();
        match values {
            // One value: equal lengths and bytes say it all.
            [only] => fast_eq(key, only.as_bytes()),
            [] => key.is_empty(),
            _ => {
                if self.ends.len() + 1 != values.len() {
                    return false;
                }
                let mut start = 0usize;
                for (i, v) in values.iter().enumerate() {
                    let end = self.ends.get(i).map_or(key.len(), |&e| e as usize);
                    if end < start
                        || end - start != v.len()
                        || !key.get(start..end).is_some_and(|k| fast_eq(k, v.as_bytes()))
                    {
                        return false;
                    }
                    start = end;
                }
                start == key.len()
            }
        }
    }

    /// Key order: value by value.
    fn cmp_key(&self, other: &Self) -> std::cmp::Ordering {
        (0..=self.ends.len()).map(|i| self.key_value(i)).cmp((0..=other.ends.len()).map(|i| other.key_value(i)))
    }
}

/// Byte equality without a call to `memcmp` for short keys (most label
/// values): two overlapping word compares cover 8 to 16 bytes.
#[inline]
fn fast_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word =
        |s: &[u8], at: usize| s.get(at..at + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()).map(u64::from_ne_bytes);
    match n {
        0..8 => a == b,
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// What keeps entries and tables read without the lock allocated: an epoch
/// guard in an index that reclaims, nothing in one that does not (retired
/// memory then lives as long as the index).
type Pin = Option<epoch::Guard>;

/// One epoch pin shared by many lookups on this thread
/// ([`StringIndex::with_live_in`]): a reclaiming index's lookup otherwise
/// pins for itself, whose `SeqCst` fence costs more than the rest of a
/// lookup among a few keys. While it lives, memory retired by any
/// reclaiming index in the process (every one shares `crossbeam-epoch`'s
/// global collector) waits to be freed: hold it for a batch, never across
/// a blocking call or an idle period. Not `Send`: a pin is its thread's.
pub struct PinScope {
    /// Always pinned (whichever index it is used with: one that does not
    /// reclaim ignores it).
    pin: Pin,
}

impl PinScope {
    /// Pins the epoch for this thread until the scope drops.
    pub fn new() -> Self {
        Self { pin: Some(epoch::pin()) }
    }
}

impl Default for PinScope {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PinScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinScope")
    }
}

/// One entry to expire: see [`StringIndex::expire`].
#[derive(Clone, Copy, Debug)]
pub struct Expiry<'a> {
    /// The key's hash (the same function every call on the index uses).
    pub hash: u64,
    /// The key's values.
    pub values: &'a [&'a str],
    /// The entry's id, as a walk saw it: a newer entry of the key is left.
    pub id: u64,
    /// The fingerprint of its value at its last export.
    pub fingerprint: u64,
}

/// What [`StringIndex::settle_expired`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Expired entries freed: nothing updated them after they expired.
    pub freed: usize,
    /// Expired entries put back: an update raced their expiry.
    pub revived: usize,
}

impl<V: Send + Sync + 'static> Inner<V> {
    #[inline(always)]
    fn pin(&self) -> Pin {
        if self.reclaim { Some(epoch::pin()) } else { None }
    }

    /// The current table, kept allocated by `_pin`.
    #[inline(always)]
    fn table<'p>(&'p self, _pin: &'p Pin) -> &'p Table {
        // Acquire: pairs with the Release that published a rebuilt table,
        // so its words are filled.
        let at = self.table.load(Ordering::Acquire);
        // SAFETY: `table` always holds the address of a live `Table` (set
        // in `build`, replaced only under the writers' lock). A replaced
        // table is retired: without reclamation it is kept until the index
        // drops (outliving `&self`); with it, it is freed through the epoch
        // only after every thread pinned when it was retired has unpinned,
        // and the caller is pinned (`_pin` is `Some` whenever `reclaim` is).
        unsafe { &*std::ptr::with_exposed_provenance::<Table>(at) }
    }

    /// The entry an index word names, kept allocated by `_pin`.
    #[inline(always)]
    fn entry_at<'p>(&'p self, _pin: &'p Pin, word: u64) -> &'p Entry<V> {
        // SAFETY: a word other than EMPTY and TOMBSTONE holds the address
        // of an entry published with it. Entries are freed only after they
        // left the table (tombstone, or a rebuild without them) and were
        // retired: without reclamation they are kept until the index drops;
        // with it, freed after every thread pinned at their retirement has
        // unpinned (the epoch's deferred free, or an expiry's quiet ticket),
        // and the caller is pinned.
        unsafe { &*std::ptr::with_exposed_provenance::<Entry<V>>((word & ADDRESS) as usize) }
    }

    /// The live entry for `values`, if any, without a lock.
    #[inline(always)]
    fn find_live<'p>(&'p self, pin: &'p Pin, hash: u64, values: &[&str]) -> Option<&'p Entry<V>> {
        let table = self.table(pin);
        let found = self.probe(pin, table, hash, values);
        // Every word above was read from memory that must still be the
        // table's: in the models, a free before the last read shows here.
        #[cfg(hotmeter_loom)]
        if table.freed.load(Ordering::SeqCst) {
            crate::sync::note_model_violation("a lookup read a table after its free");
        }
        found
    }

    /// Probes `table` for the live entry for `values`.
    #[inline(always)]
    fn probe<'p>(&'p self, pin: &'p Pin, table: &'p Table, hash: u64, values: &[&str]) -> Option<&'p Entry<V>> {
        let words = &table.words;
        let mask = words.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            // Acquire: pairs with the inserter's Release, so the entry it
            // names is initialised.
            let word = words[i].load(Ordering::Acquire);
            if word == EMPTY {
                return None;
            }
            if word & TAG == hash & TAG && word != TOMBSTONE {
                let entry = self.entry_at(pin, word);
                if entry.hash == hash && entry.matches(values) && !entry.is_removed() {
                    return Some(entry);
                }
            }
            i = (i + 1) & mask;
        }
    }
}

impl<V> EntryPtr<V> {
    /// The entry, for a holder of the writers' lock (or of a pin taken
    /// before the lock that listed it).
    ///
    /// # Safety
    /// The entry must not have been freed: it is in the table, the sorted
    /// list, the expiring list or the kept list under the writers' lock, or
    /// the caller was pinned before it was retired.
    unsafe fn get<'a>(self) -> &'a Entry<V> {
        // SAFETY: the caller's contract.
        unsafe { self.0.as_ref() }
    }

    /// Drops the entry in its slot, and gives the slot back to `slab`.
    ///
    /// # Safety
    /// Only once, by its sole owner: no reader can reach it any more.
    unsafe fn free(self, slab: &Slab<V>)
    where
        V: 'static,
    {
        let slot = slab.slot_of(self);
        // SAFETY: written in `miss` and never dropped before (the caller's
        // contract); nothing reads it any more.
        unsafe { std::ptr::drop_in_place(self.0.as_ptr()) };
        if let Some(slot) = slot {
            lock(&slab.free).push(slot);
        }
    }
}

/// Hands what this thread deferred to the epoch's global queue at once (a
/// thread's own bag would otherwise wait for 63 more deferrals or its next
/// 128 pins), so removed memory is freed, and expiries settle, promptly
/// whichever thread runs next. Never called with the slab's free list
/// locked: deferred frees run inside it and take that lock.
fn flush(pin: &Pin) {
    if let Some(guard) = pin {
        guard.flush();
    }
}

/// Frees a retired table once every thread pinned now has unpinned (or at
/// once, in an index that does not reclaim: its caller keeps it instead).
fn retire_table(pin: &Pin, address: usize) {
    let free = move || {
        #[cfg(not(hotmeter_loom))]
        // SAFETY: `address` is a `Box<Table>` leaked by the index and
        // retired (no longer reachable from the index) exactly once, here.
        drop(unsafe { Box::from_raw(std::ptr::with_exposed_provenance_mut::<Table>(address)) });
        #[cfg(hotmeter_loom)]
        // SAFETY: as above; the models keep the memory and mark it.
        unsafe { &*std::ptr::with_exposed_provenance::<Table>(address) }.freed.store(true, Ordering::SeqCst);
    };
    match pin {
        // SAFETY: the object is unreachable for any thread that pins from
        // now on, and the epoch runs `free` only after every thread pinned
        // now has unpinned; `free` owns nothing but the address.
        Some(guard) => unsafe { guard.defer_unchecked(free) },
        None => free(),
    }
}

impl<V: Send + Sync + 'static> StringIndex<V> {
    /// An empty index for keys of `arity` values, holding at most `limit`
    /// live entries (clamped to `1..=2^24`). It keeps what it retires
    /// (lookups pin nothing), and so holds at most twice `limit` entries
    /// over its lifetime: new keys beyond that are refused.
    pub fn with_limit(arity: usize, limit: usize) -> Self {
        Self::build(arity, limit, false)
    }

    /// As [`with_limit`](Self::with_limit), but removed and expired entries
    /// are freed (every lookup pins `crossbeam-epoch`'s epoch, a few
    /// nanoseconds) and any number of keys may come and go: memory is
    /// bounded by the live entries.
    pub fn reclaiming_with_limit(arity: usize, limit: usize) -> Self {
        Self::build(arity, limit, true)
    }

    fn build(arity: usize, limit: usize, reclaim: bool) -> Self {
        let table = Box::into_raw(Box::new(Table::new(INDEX0))).expose_provenance();
        Self {
            inner: Arc::new(Inner {
                arity,
                limit: limit.clamp(1, MAX_LIMIT),
                reclaim,
                table: AtomicUsize::new(table),
                live: AtomicUsize::new(0),
                expiring: AtomicUsize::new(0),
                slab: Arc::new(Slab {
                    segments: std::array::from_fn(|_| OnceLock::new()),
                    free: Mutex::new(Vec::new()),
                }),
                writers: Mutex::new(Writers {
                    slots: 0,
                    used: 0,
                    sorted: Vec::new(),
                    version: 0,
                    next_id: 0,
                    allocated: 0,
                    kept: Vec::new(),
                    expiring: Vec::new(),
                }),
            }),
        }
    }

    /// Whether removed and expired entries are freed (see
    /// [`reclaiming_with_limit`](Self::reclaiming_with_limit)).
    pub fn reclaiming(&self) -> bool {
        self.inner.reclaim
    }

    /// The hash every lookup takes by default. Any other function of the
    /// values works too (a `metrics::Key`'s hash, say) as long as every
    /// call on one index uses the same one: values are always compared
    /// exactly, so collisions cost time, never correctness, but a key looked
    /// up with two different hashes is two keys (as in a `HashMap` whose
    /// `Hash` disagrees with its `Eq`).
    #[inline]
    pub fn hash(values: &[&str]) -> u64 {
        use std::hash::Hasher;
        // Fixed seed: hashes are only compared within this process.
        let mut h = foldhash::fast::FixedState::with_seed(0x6d65_7465_7268_6f74).build_hasher();
        // What `Hash for [&str]` writes (the count, then each value's bytes
        // and a 0xff), so every key hashes as before, but in a loop the
        // caller's crate inlines: the slice's `Hash` left a call to
        // `hash_slice` in a dependent's default release build
        // (benches/inline-check.sh).
        h.write_usize(values.len());
        for v in values {
            h.write(v.as_bytes());
            h.write_u8(0xff);
        }
        h.finish()
    }

    #[inline]
    fn check_len(&self, values: &[&str]) -> Result<(), LabelCountError> {
        let expected = self.inner.arity;
        if values.len() == expected { Ok(()) } else { Err(LabelCountError { expected, got: values.len() }) }
    }

    /// Runs `f` on the live value for `values`, if there is one. Lock-free:
    /// the hit path callers build on.
    #[inline]
    pub fn find_with<R>(
        &self,
        hash: u64,
        values: &[&str],
        f: impl FnOnce(&V) -> R,
    ) -> Result<Option<R>, LabelCountError> {
        Ok(self.with_live(hash, values, f)?.ok())
    }

    /// Runs `f` on the live value for `values`, or hands `f` back when there
    /// is none (for a caller with a slow path of its own). Lock-free.
    #[inline]
    pub fn with_live<R, F: FnOnce(&V) -> R>(
        &self,
        hash: u64,
        values: &[&str],
        f: F,
    ) -> Result<Result<R, F>, LabelCountError> {
        self.check_len(values)?;
        let pin = self.inner.pin();
        Ok(match self.inner.find_live(&pin, hash, values) {
            Some(entry) => Ok(f(&entry.value)),
            None => Err(f),
        })
    }

    /// [`with_live`](Self::with_live) inside a [`PinScope`]: no pin of its
    /// own, so a reclaiming index's lookup costs what a plain one does.
    #[inline]
    pub fn with_live_in<R, F: FnOnce(&V) -> R>(
        &self,
        scope: &PinScope,
        hash: u64,
        values: &[&str],
        f: F,
    ) -> Result<Result<R, F>, LabelCountError> {
        self.check_len(values)?;
        Ok(match self.inner.find_live(&scope.pin, hash, values) {
            Some(entry) => Ok(f(&entry.value)),
            None => Err(f),
        })
    }

    /// Runs `f` on the value for `values`, inserting `make()` first if the
    /// key is not live (or putting an expiring entry back). `Ok(None)` when
    /// the key is not live and the index is full; `make` is then not
    /// called. The hit path is lock-free; only a miss locks.
    #[inline]
    pub fn get_or_insert_with<R>(
        &self,
        hash: u64,
        values: &[&str],
        make: impl FnOnce() -> V,
        f: impl FnOnce(&V) -> R,
    ) -> Result<Option<R>, LabelCountError> {
        self.get_or_try_insert_with(hash, values, || Some(make()), f)
    }

    /// As [`get_or_insert_with`](Self::get_or_insert_with), but `make` may
    /// refuse a new key (`None`): nothing is inserted and the result is
    /// `Ok(None)`, as for a full index. `make` runs only for a key that
    /// needs a new entry (never for a hit, nor an expiring entry put back).
    #[inline]
    pub fn get_or_try_insert_with<R>(
        &self,
        hash: u64,
        values: &[&str],
        make: impl FnOnce() -> Option<V>,
        f: impl FnOnce(&V) -> R,
    ) -> Result<Option<R>, LabelCountError> {
        self.check_len(values)?;
        let pin = self.inner.pin();
        if let Some(entry) = self.inner.find_live(&pin, hash, values) {
            return Ok(Some(f(&entry.value)));
        }
        Ok(self.miss(&pin, hash, values, make).map(|entry| f(&entry.value)))
    }

    /// Finds, revives or inserts the entry for `values` under the writers'
    /// lock; `None` when that would exceed the limit or `make` refuses.
    #[cold]
    #[inline(never)]
    fn miss<'p>(
        &'p self,
        pin: &'p Pin,
        hash: u64,
        values: &[&str],
        make: impl FnOnce() -> Option<V>,
    ) -> Option<&'p Entry<V>> {
        let inner = &*self.inner;
        // Full already: no lock needed to know the answer, but only after
        // looking the key up again. Our lock-free lookup may have missed
        // just before another thread inserted (or revived) this very key and
        // so filled the index; that entry is ours to use. Acquire pairs with
        // the Release increment of `live` by that writer (writers are
        // serialised by the lock, so every earlier insert or revival
        // happens-before the count we read): the index word it wrote is
        // visible to this lookup.
        // An expiring entry is out of the table but still this key's: the
        // count of them is raised before any leaves the table (its
        // tombstone's `Release` store publishes it to a lookup that saw the
        // tombstone), so a lookup that may be after one takes the lock.
        if inner.live.load(Ordering::Acquire) >= inner.limit && inner.expiring.load(Ordering::Relaxed) == 0 {
            return inner.find_live(pin, hash, values);
        }
        let mut w = lock(&inner.writers);
        // Another thread may have inserted it while we waited.
        if let Some(entry) = inner.find_live(pin, hash, values) {
            return Some(entry);
        }
        let full = inner.live.load(Ordering::Relaxed) >= inner.limit;
        let expiring = w.expiring_position(hash, values);
        if let Some(at) = expiring {
            // Its expiry is cancelled: the key is in use again (even at the
            // limit, as `settle_expired` takes back a raced entry: it held
            // its place until a moment ago, and the update is its own).
            let x = w.expiring.swap_remove(at);
            inner.expiring.store(w.expiring.len(), Ordering::Relaxed);
            self.link(&mut w, pin, x.entry);
            // SAFETY: linked again, and the caller is pinned.
            return Some(unsafe { x.entry.get() });
        }
        if full || (!inner.reclaim && w.allocated >= 2 * inner.limit) {
            return None;
        }
        // The value first: a `make` that refuses (or panics) takes no slot.
        let value = make()?;
        // A freed slot, or the next new one.
        let reused = lock(&inner.slab.free).pop();
        let number = reused.map_or(w.slots, |n| n as usize);
        let Some(slot) = inner.slab.slot(number) else {
            // Past the last segment (billions of slots): refused like a
            // full index.
            return None;
        };
        let address = slot.0.get().expose_provenance() as u64;
        if address & TAG != 0 || address <= TOMBSTONE {
            // An address an index word cannot hold (never on today's
            // 48-bit address spaces): refused like a full index.
            if let Some(n) = reused {
                lock(&inner.slab.free).push(n);
            }
            return None;
        }
        if reused.is_none() {
            w.slots += 1;
        }
        let id = w.next_id;
        // SAFETY: the slot is free (new, or its entry freed and handed back
        // by its sole owner), and no reader can reach it until `link`
        // publishes its word with `Release`.
        let written = unsafe { (*slot.0.get()).write(Entry::new(hash, id, values, value)) };
        let entry = EntryPtr(std::ptr::NonNull::from(written));
        w.next_id += 1;
        w.allocated += 1;
        self.link(&mut w, pin, entry);
        // SAFETY: just linked, and the caller is pinned.
        Some(unsafe { entry.get() })
    }

    /// Puts `entry` (new, or expiring) in the table and the sorted list.
    /// Writers' lock held.
    fn link(&self, w: &mut Writers<V>, pin: &Pin, entry: EntryPtr<V>) {
        let inner = &*self.inner;
        // SAFETY: the caller holds it (new, or listed as expiring).
        let e = unsafe { entry.get() };
        e.set_removed(false);
        let mut table = inner.table(pin);
        if (w.used + 1) * 2 > table.words.len() {
            // Rebuild without tombstones: the smallest power of two at most
            // half full (as dense as growth by doubling leaves it, which
            // keeps a large table's cache misses where they were), doubled
            // if that left less than a sixteenth of it for the changes
            // before the next rebuild.
            let live = w.sorted.len() + 1;
            let mut len = INDEX0;
            while len < live * 2 {
                len *= 2;
            }
            if len / 2 - live < len / 16 {
                len *= 2;
            }
            let next = Table::new(len);
            for &p in &w.sorted {
                // SAFETY: live entries, lock held.
                let hash = unsafe { p.get() }.hash;
                insert_word(&next.words, hash, p.address());
            }
            w.used = w.sorted.len();
            let next = Box::into_raw(Box::new(next)).expose_provenance();
            // Release: readers that see the new address see its words.
            let old = inner.table.swap(next, Ordering::Release);
            if inner.reclaim {
                retire_table(pin, old);
                flush(pin);
            } else {
                w.kept.push(Kept::Table(old));
            }
            table = inner.table(pin);
        }
        if insert_word(&table.words, e.hash, entry.address()) {
            w.used += 1;
        }
        // Release: publishes the new index word to the unlocked full check.
        inner.live.fetch_add(1, Ordering::Release);
        // SAFETY: sorted entries are live, lock held.
        let at = w.sorted.partition_point(|&p| unsafe { p.get() }.cmp_key(e).is_lt());
        w.sorted.insert(at, entry);
        w.version += 1;
    }

    /// Takes a live `entry` out of the table and the sorted list (it stays
    /// allocated: the caller retires it). Writers' lock held.
    fn unlink(&self, w: &mut Writers<V>, pin: &Pin, entry: EntryPtr<V>) {
        self.unlink_from_table(w, pin, entry);
        // SAFETY: unlinked but not retired, lock held.
        let e = unsafe { entry.get() };
        let at = w.sorted.partition_point(|&p| {
            // SAFETY: sorted entries are allocated, lock held.
            unsafe { p.get() }.cmp_key(e).is_lt()
        });
        if w.sorted.get(at).is_some_and(|&p| p.address() == entry.address()) {
            w.sorted.remove(at);
        }
    }

    /// Takes a live `entry` out of the table and marks it removed, leaving
    /// the sorted list to the caller (which drops every removed entry from
    /// it in one pass when it unlinks many). Writers' lock held.
    fn unlink_from_table(&self, w: &mut Writers<V>, pin: &Pin, entry: EntryPtr<V>) {
        let inner = &*self.inner;
        // SAFETY: live, lock held.
        let e = unsafe { entry.get() };
        e.set_removed(true);
        let words = &inner.table(pin).words;
        let mask = words.len() - 1;
        let mut i = e.hash as usize & mask;
        for _ in 0..words.len() {
            let word = words[i].load(Ordering::Relaxed);
            if word == EMPTY {
                break;
            }
            if word & ADDRESS == entry.address() {
                words[i].store(TOMBSTONE, Ordering::Release);
                break;
            }
            i = (i + 1) & mask;
        }
        inner.live.fetch_sub(1, Ordering::Relaxed);
        w.version += 1;
    }

    /// Drops every entry marked removed from the sorted list, in one pass.
    fn drop_removed_from_sorted(w: &mut Writers<V>) {
        // SAFETY: entries in the sorted list are allocated (removed ones
        // are retired only after this), lock held.
        w.sorted.retain(|&p| !unsafe { p.get() }.is_removed());
    }

    /// Frees an unlinked entry once no reader can hold it (or keeps it, in
    /// an index that does not reclaim). Writers' lock held.
    fn retire(&self, w: &mut Writers<V>, pin: &Pin, entry: EntryPtr<V>) {
        match pin {
            Some(guard) if self.inner.reclaim => {
                w.allocated -= 1;
                let slab = self.inner.slab.clone();
                let address = entry.address() as usize;
                let free = move || {
                    let entry = EntryPtr(
                        std::ptr::NonNull::new(std::ptr::with_exposed_provenance_mut::<Entry<V>>(address))
                            .expect("a retired entry's address is not null"),
                    );
                    // SAFETY: retired exactly once (out of the table and
                    // every list); the slab it lives in is kept alive by
                    // `slab`.
                    unsafe { entry.free(&slab) };
                };
                // SAFETY: the entry is unreachable for any thread that pins
                // from now on, and the epoch runs `free` only after every
                // thread pinned now has unpinned.
                unsafe { guard.defer_unchecked(free) };
            }
            _ => w.kept.push(Kept::Entry(entry)),
        }
    }

    /// Removes the entry for `values` (found with `hash`, the same function
    /// of the values every call on this index uses): no longer live, its
    /// place under the limit freed, its memory retired. Returns whether it
    /// was live, or the same error as a lookup when `values` has the wrong
    /// length. An expiring entry for the key is dropped too (it will not
    /// come back).
    pub fn remove(&self, hash: u64, values: &[&str]) -> Result<bool, LabelCountError> {
        self.check_len(values)?;
        let inner = &*self.inner;
        let pin = inner.pin();
        let mut w = lock(&inner.writers);
        if let Some(entry) = inner.find_live(&pin, hash, values) {
            let entry = EntryPtr(std::ptr::NonNull::from(entry));
            self.unlink(&mut w, &pin, entry);
            self.retire(&mut w, &pin, entry);
            drop(w);
            flush(&pin);
            return Ok(true);
        }
        let expiring = w.expiring_position(hash, values);
        if let Some(at) = expiring {
            let x = w.expiring.swap_remove(at);
            inner.expiring.store(w.expiring.len(), Ordering::Relaxed);
            self.retire(&mut w, &pin, x.entry);
            drop(w);
            flush(&pin);
        }
        Ok(false)
    }

    /// Removes every live entry whose values (in key order) `keep` rejects,
    /// and returns how many (expiring entries it rejects are dropped too,
    /// uncounted). `keep` runs under the writers' lock: inserts of new keys
    /// and walks of the live entries (scrapes) wait for it (lookups of live
    /// keys never do), and it must not call into this index. It sees every
    /// entry before any is removed, so a `keep` that panics removes nothing.
    pub fn retain(&self, mut keep: impl FnMut(&[&str]) -> bool) -> usize {
        let inner = &*self.inner;
        let pin = inner.pin();
        let mut w = lock(&inner.writers);
        let mut values: Vec<&str> = Vec::with_capacity(inner.arity);
        let mut rejected = Vec::new();
        for &p in &w.sorted {
            // SAFETY: live, lock held.
            let e = unsafe { p.get() };
            values.clear();
            values.extend((0..inner.arity).map(|i| e.key_value(i)));
            if !keep(&values) {
                rejected.push(p);
            }
        }
        let mut dropped = Vec::new();
        for (at, x) in w.expiring.iter().enumerate() {
            // SAFETY: listed, lock held.
            let e = unsafe { x.entry.get() };
            values.clear();
            values.extend((0..inner.arity).map(|i| e.key_value(i)));
            if !keep(&values) {
                dropped.push(at);
            }
        }
        // One pass over the sorted list for all of them, not one each.
        for &p in &rejected {
            self.unlink_from_table(&mut w, &pin, p);
        }
        Self::drop_removed_from_sorted(&mut w);
        for &p in &rejected {
            self.retire(&mut w, &pin, p);
        }
        for &at in dropped.iter().rev() {
            let x = w.expiring.swap_remove(at);
            self.retire(&mut w, &pin, x.entry);
        }
        inner.expiring.store(w.expiring.len(), Ordering::Relaxed);
        drop(w);
        flush(&pin);
        rejected.len()
    }

    /// Removes every entry (expiring ones included).
    pub fn clear(&self) {
        self.retain(|_| false);
    }

    /// Expires the live entry for `values` if it is still the one with id
    /// `id` (an index that does not reclaim expires nothing): it leaves the
    /// table at once, and [`settle_expired`](Self::settle_expired) later
    /// frees it, or puts it back if its value no longer has `fingerprint`
    /// (an update raced the expiry). A lookup of the key before then puts
    /// it back too. Returns whether it expired. For many entries at once,
    /// [`expire_all`](Self::expire_all).
    pub fn expire(&self, hash: u64, values: &[&str], id: u64, fingerprint: u64) -> bool {
        self.expire_all(&[Expiry { hash, values, id, fingerprint }]) == 1
    }

    /// [`expire`](Self::expire) for a batch, under one lock and one pass
    /// over the sorted list; returns how many expired.
    pub fn expire_all(&self, batch: &[Expiry<'_>]) -> usize {
        let inner = &*self.inner;
        if !inner.reclaim || batch.is_empty() {
            return 0;
        }
        let pin = inner.pin();
        let mut w = lock(&inner.writers);
        let quiet = Arc::new(AtomicBool::new(false));
        let mut expired = 0;
        for x in batch {
            if x.values.len() != inner.arity {
                continue;
            }
            let Some(entry) = inner.find_live(&pin, x.hash, x.values).filter(|e| e.id() == x.id) else { continue };
            let entry = EntryPtr(std::ptr::NonNull::from(entry));
            // Counted before it leaves the table: see `miss`.
            inner.expiring.fetch_add(1, Ordering::Relaxed);
            self.unlink_from_table(&mut w, &pin, entry);
            w.expiring.push(Expiring { entry, fingerprint: x.fingerprint, quiet: quiet.clone() });
            expired += 1;
        }
        if expired > 0 {
            Self::drop_removed_from_sorted(&mut w);
            if let Some(guard) = &pin {
                // Runs once every thread pinned now (any reader that may
                // have found these entries) has unpinned. Release: pairs
                // with the Acquire in `settle_expired`, so their updates
                // are visible.
                guard.defer(move || quiet.store(true, Ordering::Release));
            }
        }
        drop(w);
        flush(&pin);
        expired
    }

    /// Settles expired entries no reader can hold any more: frees each for
    /// which `still_idle(value, fingerprint it expired with)` holds, and
    /// puts back each other one (even beyond the limit: an update that
    /// raced the expiry, or a handle to the value taken before it, is kept,
    /// never routed elsewhere). Others wait for a later call; this one
    /// nudges the epoch along.
    pub fn settle_expired(&self, mut still_idle: impl FnMut(&V, u64) -> bool) -> Settled {
        let inner = &*self.inner;
        let mut settled = Settled::default();
        if !inner.reclaim || lock(&inner.writers).expiring.is_empty() {
            return settled;
        }
        // Each flush tries to advance the epoch and run what is due; the
        // tickets need two advances.
        for _ in 0..3 {
            epoch::pin().flush();
        }
        let pin = inner.pin();
        let mut w = lock(&inner.writers);
        let mut i = 0;
        while i < w.expiring.len() {
            if !w.expiring[i].quiet.load(Ordering::Acquire) {
                i += 1;
                continue;
            }
            let x = w.expiring.swap_remove(i);
            // SAFETY: listed, lock held.
            let e = unsafe { x.entry.get() };
            if still_idle(&e.value, x.fingerprint) {
                w.allocated -= 1;
                // SAFETY: out of the table and every list, and every reader
                // that found it has unpinned (its ticket ran).
                unsafe {
                    x.entry.free(&inner.slab);
                }
                settled.freed += 1;
            } else {
                self.link(&mut w, &pin, x.entry);
                settled.revived += 1;
            }
        }
        inner.expiring.store(w.expiring.len(), Ordering::Relaxed);
        settled
    }

    /// Expired entries neither freed nor put back yet.
    pub fn expiring(&self) -> usize {
        lock(&self.inner.writers).expiring.len()
    }

    /// Calls `f` on every expired entry not yet freed or put back, under
    /// the writers' lock (`f` must not call into this index).
    pub fn walk_expiring(&self, mut f: impl FnMut(&Entry<V>)) {
        let w = lock(&self.inner.writers);
        for x in &w.expiring {
            // SAFETY: listed entries are allocated while the lock is held.
            f(unsafe { x.entry.get() });
        }
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.inner.live.load(Ordering::Relaxed)
    }

    /// True with no live entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The limit on live entries.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Values per key.
    pub fn arity(&self) -> usize {
        self.inner.arity
    }

    /// Entries holding memory: live, expiring, and (in an index that does
    /// not reclaim) removed ones kept. Entries retired in an index that
    /// reclaims are not counted: the epoch frees them shortly.
    pub fn allocated(&self) -> usize {
        lock(&self.inner.writers).allocated
    }

    /// Buckets of the current table (tests of rebuilds).
    pub fn table_len(&self) -> usize {
        let pin = self.inner.pin();
        self.inner.table(&pin).words.len()
    }

    /// If the set of live entries changed since version `seen` (or `seen`
    /// is `None`), calls `f` on every live entry in key-value order and
    /// returns the current version; otherwise calls nothing and returns
    /// `None`. The lock is held only to copy the list into `scratch`, so
    /// inserts never wait for `f`; entries `f` sees stay allocated while it
    /// runs, even if they are removed meanwhile.
    pub fn walk_live_since(
        &self,
        seen: Option<u64>,
        scratch: &mut Vec<usize>,
        mut f: impl FnMut(&Entry<V>),
    ) -> Option<u64> {
        let inner = &*self.inner;
        let pin = inner.pin();
        let version = {
            let w = lock(&inner.writers);
            if seen == Some(w.version) {
                return None;
            }
            scratch.clear();
            scratch.extend(w.sorted.iter().map(|p| p.address() as usize));
            w.version
        };
        for &address in scratch.iter() {
            // Listed live under the lock while `pin` was held: freed, if
            // at all, only after `pin` is dropped (or, without
            // reclamation, when the index drops).
            f(inner.entry_at(&pin, address as u64));
        }
        Some(version)
    }

    /// Whether two handles are the same index.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl<V: Send + Sync + 'static> Drop for Inner<V> {
    fn drop(&mut self) {
        let mut w = lock(&self.writers);
        let w = &mut *w;
        // SAFETY: the index is going away, so no reader holds any of it;
        // each entry is in exactly one of these lists (retired ones handed
        // to the epoch are in none), and each table is the current one or
        // kept once.
        unsafe {
            for p in w.sorted.drain(..) {
                p.free(&self.slab);
            }
            for x in w.expiring.drain(..) {
                x.entry.free(&self.slab);
            }
            for k in w.kept.drain(..) {
                match k {
                    Kept::Entry(p) => p.free(&self.slab),
                    Kept::Table(t) => drop(Box::from_raw(std::ptr::with_exposed_provenance_mut::<Table>(t))),
                }
            }
            drop(Box::from_raw(std::ptr::with_exposed_provenance_mut::<Table>(self.table.load(Ordering::Relaxed))));
        }
    }
}

/// Inserts an index word into the first empty bucket or tombstone of its
/// probe sequence (the caller holds the writers' lock and keeps the table
/// at most half full). Returns whether the bucket was empty.
fn insert_word(words: &[AtomicU64], hash: u64, address: u64) -> bool {
    let mask = words.len() - 1;
    let mut i = hash as usize & mask;
    loop {
        let word = words[i].load(Ordering::Relaxed);
        if word == EMPTY || word == TOMBSTONE {
            // Release: publishes the entry to readers that see this word.
            words[i].store((hash & TAG) | address, Ordering::Release);
            return word == EMPTY;
        }
        i = (i + 1) & mask;
    }
}

#[cfg(all(test, not(hotmeter_loom)))]
mod tests {
    use super::*;

    fn find<V: Copy + Send + Sync>(index: &StringIndex<V>, hash: u64, values: &[&str]) -> Option<V> {
        index.find_with(hash, values, |v| *v).unwrap()
    }

    fn keys_in_order<V: Send + Sync>(index: &StringIndex<V>) -> Vec<String> {
        let mut out = Vec::new();
        index.walk_live_since(None, &mut Vec::new(), |e| out.push(e.joined_key().0.to_owned()));
        out
    }

    #[test]
    fn a_counters_slot_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Slot<crate::Counter>>(), 64);
        assert_eq!(std::mem::align_of::<Slot<crate::Counter>>(), 64);
    }

    #[test]
    fn slot_positions_tile_the_segments() {
        let mut expected = (0, 0);
        for i in 0..10_000 {
            assert_eq!(slot_position(i), expected, "slot {i}");
            expected.1 += 1;
            if expected.1 == SEGMENT0 << expected.0 {
                expected = (expected.0 + 1, 0);
            }
        }
    }

    #[test]
    fn growth_keeps_every_key_findable() {
        for reclaim in [false, true] {
            let index: StringIndex<usize> = StringIndex::build(2, 5_000, reclaim);
            let keys: Vec<[String; 2]> = (0..5_000).map(|i| [i.to_string(), (i * 7).to_string()]).collect();
            for (i, k) in keys.iter().enumerate() {
                let v = [k[0].as_str(), k[1].as_str()];
                assert_eq!(
                    index.get_or_insert_with(StringIndex::<usize>::hash(&v), &v, || i, |x| *x).unwrap(),
                    Some(i)
                );
            }
            for (i, k) in keys.iter().enumerate() {
                let v = [k[0].as_str(), k[1].as_str()];
                assert_eq!(find(&index, StringIndex::<usize>::hash(&v), &v), Some(i), "{v:?}");
            }
            assert!(index.table_len() >= 16_384, "the table grew through several rebuilds");
        }
    }
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn matching_is_exact_equality(
            stored in proptest::collection::vec("[ab\\\\\"\n]{0,20}", 1..4),
            query in proptest::collection::vec("[ab\\\\\"\n]{0,20}", 1..4),
        ) {
            let q: Vec<&str> = query.iter().map(String::as_str).collect();
            let st: Vec<&str> = stored.iter().map(String::as_str).collect();
            let entry = Entry::new(0, 0, &st, ());
            prop_assert_eq!(entry.matches(&q), stored == query);
            prop_assert!(entry.matches(&st));
            for (i, v) in st.iter().enumerate() {
                prop_assert_eq!(entry.key_value(i), *v);
            }
        }
    }

    #[test]
    fn full_index_refuses_new_keys_and_keeps_old_ones() {
        let index: StringIndex<u32> = StringIndex::with_limit(1, 2);
        let put =
            |k: &str, v: u32| index.get_or_insert_with(StringIndex::<u32>::hash(&[k]), &[k], || v, |v| *v).unwrap();
        assert_eq!(put("a", 1), Some(1));
        assert_eq!(put("b", 2), Some(2));
        assert_eq!(put("c", 3), None, "full");
        assert_eq!(put("a", 9), Some(1), "an existing key is found at the limit");
        assert_eq!(index.remove(StringIndex::<u32>::hash(&["a"]), &["a"]), Ok(true));
        assert_eq!(find(&index, StringIndex::<u32>::hash(&["a"]), &["a"]), None, "removed is not live");
        assert_eq!(put("c", 3), Some(3), "room again");
        assert_eq!(put("a", 9), None, "full again: a removed key does not come back over the limit");
        index.clear();
        assert!(index.is_empty());
        assert_eq!(put("a", 9), Some(9), "a key that comes back is a new entry");
        assert_eq!(index.allocated(), 4, "without reclamation, removed entries are kept");
        assert_eq!(put("d", 4), None, "and count against twice the limit");
        assert_eq!(keys_in_order(&index), ["a"]);
        assert_eq!(index.find_with(0, &["x", "y"], |_| ()).unwrap_err(), LabelCountError { expected: 1, got: 2 });
    }

    /// With reclamation, any number of keys come and go: memory follows
    /// the live entries, the table stays small, and a key that comes back
    /// starts anew.
    /// A `PinScope` keeps everything its lookups may have read: an entry
    /// removed while it lives is freed only after it drops.
    #[test]
    fn a_pin_scope_keeps_what_it_may_have_read_until_it_drops() {
        let index: StringIndex<u64> = StringIndex::reclaiming_with_limit(1, 10);
        let h = StringIndex::<u64>::hash(&["a"]);
        index.get_or_insert_with(h, &["a"], || 7, |_| ()).unwrap();
        let scope = PinScope::new();
        assert_eq!(index.with_live_in(&scope, h, &["a"], |v| *v).unwrap().ok(), Some(7));
        assert_eq!(index.remove(h, &["a"]), Ok(true));
        for _ in 0..200 {
            crate::sync::epoch::pin().flush();
            assert!(lock(&index.inner.slab.free).is_empty(), "freed while a scope that may have read it lives");
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        assert!(index.with_live_in(&scope, h, &["a"], |v| *v).unwrap().is_err(), "removed: a lookup misses");
        drop(scope);
        // Other tests' threads pin the same global epoch: bounded retries.
        for _ in 0..2_000 {
            if !lock(&index.inner.slab.free).is_empty() {
                break;
            }
            crate::sync::epoch::pin().flush();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(lock(&index.inner.slab.free).len(), 1, "freed once the scope dropped");
    }

    #[test]
    fn a_reclaiming_index_holds_only_what_is_live() {
        let index: StringIndex<u64> = StringIndex::reclaiming_with_limit(1, 1_000);
        for round in 0..200u64 {
            for i in 0..50u64 {
                let k = format!("r{round}-{i}");
                let h = StringIndex::<u64>::hash(&[&k]);
                assert_eq!(
                    index.get_or_insert_with(h, &[&k], || round * 100 + i, |v| *v).unwrap(),
                    Some(round * 100 + i)
                );
            }
            assert_eq!(index.len(), 50 + round as usize);
            assert_eq!(index.retain(|v| !v[0].starts_with(&format!("r{round}-")) || v[0].ends_with("-7")), 49);
            // Let the epoch hand the 49 slots back (other tests' threads pin
            // the same global epoch: bounded retries).
            for _ in 0..2_000 {
                if lock(&index.inner.slab.free).len() >= 49 {
                    break;
                }
                crate::sync::epoch::pin().flush();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        assert_eq!(index.len(), 200);
        assert_eq!(index.allocated(), 200, "10,000 keys came and went; the live ones are allocated");
        let slots = lock(&index.inner.writers).slots;
        assert!(slots <= 300, "freed slots are used again: {slots} slots for 10,000 keys");
        assert!(index.table_len() <= 1024, "tombstones do not pile up: {}", index.table_len());
        let h = StringIndex::<u64>::hash(&["r3-7"]);
        assert_eq!(find(&index, h, &["r3-7"]), Some(307));
        assert_eq!(index.remove(h, &["r3-7"]), Ok(true));
        assert_eq!(index.get_or_insert_with(h, &["r3-7"], || 0, |v| *v).unwrap(), Some(0), "comes back anew");
        let mut ids = Vec::new();
        index.walk_live_since(None, &mut Vec::new(), |e| ids.push(e.id()));
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 200, "ids are unique");
    }

    #[test]
    fn expiry_frees_an_untouched_entry_and_puts_back_a_touched_one() {
        let index: StringIndex<AtomicU64> = StringIndex::reclaiming_with_limit(1, 10);
        let h = |k: &str| StringIndex::<AtomicU64>::hash(&[k]);
        let get = |k: &str| index.get_or_insert_with(h(k), &[k], || AtomicU64::new(0), |v| v.load(Ordering::Relaxed));
        let add = |k: &str| index.find_with(h(k), &[k], |v| v.fetch_add(1, Ordering::Relaxed)).unwrap();
        for k in ["idle", "raced", "back"] {
            get(k).unwrap();
            add(k);
        }
        let id = |k: &str| {
            let mut id = None;
            index.walk_live_since(None, &mut Vec::new(), |e| {
                if e.key_value(0) == k {
                    id = Some(e.id());
                }
            });
            id.unwrap()
        };
        let (idle, raced, back) = (id("idle"), id("raced"), id("back"));
        assert!(!index.expire(h("idle"), &["idle"], raced, 1), "another entry's id expires nothing");
        for (k, id) in [("idle", idle), ("raced", raced), ("back", back)] {
            assert!(index.expire(h(k), &[k], id, 1), "{k}");
        }
        assert_eq!((index.len(), index.expiring(), index.allocated()), (0, 3, 3));
        // An update that found the entry before it left the table lands in
        // it: simulated by writing through the expiring entry itself.
        {
            let w = lock(&index.inner.writers);
            let x = w.expiring.iter().find(|x| {
                // SAFETY: listed, lock held.
                let e = unsafe { x.entry.get() };
                e.key_value(0) == "raced"
            });
            // SAFETY: listed, lock held.
            x.map(|x| unsafe { x.entry.get() }.value.fetch_add(1, Ordering::Relaxed));
        }
        assert_eq!(get("back"), Ok(Some(1)), "a lookup before it settles puts it back, value kept");
        assert_eq!(index.expiring(), 2);
        let mut settled = Settled::default();
        // Other tests' threads pin the same global epoch: settling may take
        // a few rounds (bounded here).
        for _ in 0..2_000 {
            let s = index.settle_expired(|v, at| v.load(Ordering::Relaxed) == at);
            settled.freed += s.freed;
            settled.revived += s.revived;
            if index.expiring() == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(settled, Settled { freed: 1, revived: 1 });
        assert_eq!(index.expiring(), 0);
        assert_eq!(keys_in_order(&index), ["back", "raced"]);
        assert_eq!(get("raced"), Ok(Some(2)), "the raced update is kept");
        assert_eq!(get("idle"), Ok(Some(0)), "the idle one starts anew");
        assert_eq!(index.allocated(), 3);
    }

    /// A `make` that refuses (or panics) takes no slot: freed slots stay
    /// free for the next key.
    #[test]
    fn a_refused_or_panicking_make_takes_no_slot() {
        let index: StringIndex<u32> = StringIndex::reclaiming_with_limit(1, 100);
        let h = |k: &str| StringIndex::<u32>::hash(&[k]);
        for k in ["a", "b"] {
            index.get_or_insert_with(h(k), &[k], || 1, |_| ()).unwrap();
            assert_eq!(index.remove(h(k), &[k]), Ok(true));
        }
        // Let the epoch hand the two slots back.
        for _ in 0..2_000 {
            if lock(&index.inner.slab.free).len() == 2 {
                break;
            }
            crate::sync::epoch::pin().flush();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(lock(&index.inner.slab.free).len(), 2);
        for i in 0..10 {
            let k = format!("refused-{i}");
            assert_eq!(index.get_or_try_insert_with(h(&k), &[&k], || None, |_| ()).unwrap(), None);
        }
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            index.get_or_insert_with(h("p"), &["p"], || panic!("make panics"), |_| ())
        }));
        assert!(panicked.is_err());
        assert_eq!(lock(&index.inner.slab.free).len(), 2, "no slot lost");
        let before = lock(&index.inner.writers).slots;
        for k in ["c", "d"] {
            index.get_or_insert_with(h(k), &[k], || 2, |_| ()).unwrap();
        }
        assert_eq!(lock(&index.inner.writers).slots, before, "the freed slots were used");
    }

    /// At the limit, a lookup of an expiring key takes it back rather than
    /// going to the overflow series.
    #[test]
    fn an_expiring_key_comes_back_even_at_the_limit() {
        let index: StringIndex<u32> = StringIndex::reclaiming_with_limit(1, 1);
        let h = StringIndex::<u32>::hash(&["a"]);
        index.get_or_insert_with(h, &["a"], || 7, |_| ()).unwrap();
        let mut id = 0;
        index.walk_live_since(None, &mut Vec::new(), |e| id = e.id());
        assert!(index.expire(h, &["a"], id, 7));
        assert_eq!(index.get_or_insert_with(StringIndex::<u32>::hash(&["b"]), &["b"], || 1, |v| *v).unwrap(), Some(1));
        assert_eq!(index.len(), 1, "b took the free place");
        assert_eq!(index.get_or_insert_with(h, &["a"], || 0, |v| *v).unwrap(), Some(7), "a came back, value kept");
        assert_eq!((index.len(), index.expiring()), (2, 0));
    }

    #[test]
    fn a_callers_own_hash_works_for_every_operation() {
        let index: StringIndex<u32> = StringIndex::with_limit(1, 10);
        let custom = 42u64;
        assert_eq!(index.get_or_insert_with(custom, &["a"], || 1, |v| *v).unwrap(), Some(1));
        assert_eq!(find(&index, custom, &["a"]), Some(1));
        assert_eq!(index.remove(custom, &["a"]), Ok(true));
        assert_eq!(find(&index, custom, &["a"]), None);
        assert_eq!(index.get_or_try_insert_with(custom, &["b"], || None, |v| *v).unwrap(), None, "refused");
        assert_eq!(index.allocated(), 1, "a refused key takes no entry");
    }

    #[test]
    fn rebuilds_keep_keys_findable_under_callers_own_degenerate_hashes() {
        // A caller's hash may use only one half of the word, or be constant:
        // every key stays findable and removable through rebuilds.
        type Hash = fn(u64) -> u64;
        let hashes: [(&str, Hash); 4] = [
            ("constant", |_| 7),
            ("low half only", |i| i.wrapping_mul(0x9e37_79b9) & 0xffff_ffff),
            ("high half only", |i| i.wrapping_mul(0x9e37_79b9) << 32),
            ("all ones", |_| u64::MAX),
        ];
        for reclaim in [false, true] {
            for (what, hash) in hashes {
                let index: StringIndex<u64> = StringIndex::build(1, 1_000, reclaim);
                for i in 0..600u64 {
                    let k = i.to_string();
                    assert_eq!(index.get_or_insert_with(hash(i), &[&k], || i, |v| *v).unwrap(), Some(i), "{what}");
                }
                assert!(index.table_len() >= 2048, "{what}: grew");
                for i in 0..600u64 {
                    let k = i.to_string();
                    assert_eq!(find(&index, hash(i), &[&k]), Some(i), "{what}: key {i}");
                }
                for i in (0..600u64).step_by(3) {
                    assert_eq!(index.remove(hash(i), &[&i.to_string()]), Ok(true), "{what}");
                }
                for i in 0..600u64 {
                    let k = i.to_string();
                    assert_eq!(find(&index, hash(i), &[&k]), (i % 3 != 0).then_some(i), "{what}: key {i}");
                }
                assert_eq!(index.get_or_insert_with(hash(0), &["0"], || 1234, |v| *v).unwrap(), Some(1234), "{what}");
            }
        }
    }

    #[test]
    fn walks_see_live_entries_in_key_order_and_only_when_changed() {
        let index: StringIndex<u32> = StringIndex::reclaiming_with_limit(2, 10);
        for (a, b) in [("b", "1"), ("a", "2"), ("a", "10"), ("c", "")] {
            index.get_or_insert_with(StringIndex::<u32>::hash(&[a, b]), &[a, b], || 0, |_| ()).unwrap();
        }
        let mut scratch = Vec::new();
        let mut seen = Vec::new();
        let v =
            index.walk_live_since(None, &mut scratch, |e| seen.push(format!("{}/{}", e.key_value(0), e.key_value(1))));
        assert_eq!(seen, ["a/10", "a/2", "b/1", "c/"]);
        assert_eq!(index.walk_live_since(v, &mut scratch, |_| panic!("unchanged")), None);
        assert_eq!(index.remove(StringIndex::<u32>::hash(&["a", "2"]), &["a", "2"]), Ok(true));
        seen.clear();
        assert!(index.walk_live_since(v, &mut scratch, |e| seen.push(e.key_value(0).to_owned())).is_some());
        assert_eq!(seen, ["a", "b", "c"]);
    }
}
