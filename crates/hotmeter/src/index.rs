//! The lock-free string index: [`StringIndex`], a read-optimised map from a
//! fixed number of string values to a value of any type, with a cardinality
//! limit.
//!
//! Owns: entry storage (segments that never move), the open-addressing
//! index of atomic words and its growth through generations, the writers'
//! lock, the live count and removal, and the label-value order of entries.
//! [`StringFamily`](crate::StringFamily) keeps its series here, and the
//! `metrics` facade backend keeps its handle cache here. Must not: take a
//! lock or allocate on the hit path (only the first insertion of a key,
//! `#[cold]`, locks and allocates), know anything about metrics, overflow
//! series or exposition.
//!
//! # The protocol
//! - Entries live in segments (`16 << k` slots each) filled once, in slot
//!   order, under the writers' lock, and never moved or freed while the
//!   index lives: a reader holding `&V` never sees it go away.
//! - The index is an array of atomic words, `hash_hi32 | slot + 1`, kept at
//!   most half full. A writer fills an entry, then publishes its word with
//!   `Release`; a reader probes with `Acquire` and so sees the entry whole.
//!   Growth builds the next generation (twice as large) aside, fills it, and
//!   publishes its number with `Release`; older generations stay readable.
//! - `live` counts entries not removed. It changes only under the writers'
//!   lock; increments are `Release` and the unlocked "full?" check loads it
//!   with `Acquire`, then looks the key up once more: a key inserted or
//!   revived by the writer that filled the index is found, never refused.
//! - Removal marks an entry (its memory stays, readers may hold it); a
//!   removed key that comes back is revived, value included. Over its
//!   lifetime an index remembers at most twice its limit of distinct keys.

use std::hash::BuildHasher;

use crate::error::LabelCountError;
use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Mutex, OnceLock, Ordering, lock};

/// Slots in the first storage segment; segment `k` holds `SEGMENT0 << k`.
const SEGMENT0: usize = 16;
/// Buckets in the first index generation; generation `k` has `INDEX0 << k`.
const INDEX0: usize = 32;
/// Enough segments and generations for any limit up to 2^26.
const LEVELS: usize = 28;
/// The largest cardinality limit.
const MAX_LIMIT: usize = 1 << 24;

/// A concurrent map from `arity` string values to a `V`, read without locks.
///
/// The hit path hashes the values (foldhash, or a hash the caller already
/// has), probes an open-addressing index of atomic words, and compares the
/// values: no lock, no allocation, no reference-count traffic. The first
/// use of a key takes the `#[cold]` path: a mutex that only inserts
/// contend on, the limit check, and the insert. At the limit (live entries)
/// a new key is refused (`None`), never evicting one.
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
pub struct StringIndex<V: 'static> {
    inner: Arc<Inner<V>>,
}

impl<V> Clone for StringIndex<V> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<V> std::fmt::Debug for StringIndex<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StringIndex")
            .field("arity", &self.inner.arity)
            .field("len", &self.inner.live.load(Ordering::Relaxed))
            .field("limit", &self.inner.limit)
            .finish_non_exhaustive()
    }
}

struct Inner<V: 'static> {
    arity: usize,
    limit: usize,
    /// Entry storage, never moved or freed while the index lives.
    segments: [OnceLock<Segment<V>>; LEVELS],
    /// Index generations; `current` names the live one. Older ones stay
    /// readable (a reader may still be probing one) and cost at most as much
    /// as the live one, since each doubles.
    generations: [OnceLock<Box<[AtomicU64]>>; LEVELS],
    current: AtomicUsize,
    /// Entries not removed.
    live: AtomicUsize,
    /// Serialises inserts, removals and growth; never taken on the hit path.
    writers: Mutex<Writers>,
}

/// One storage segment: slots filled once, in order.
type Segment<V> = Box<[SlotCell<V>]>;

/// One slot, on a cache line of its own when the entry fits one (a
/// counter's does: 64 bytes with its once-cell), so a lookup that reaches
/// an entry touches one line.
#[repr(align(64))]
struct SlotCell<V: 'static>(OnceLock<Entry<V>>);

struct Writers {
    /// Slots used (distinct keys ever inserted).
    slots: usize,
    /// Slot numbers sorted by key values.
    sorted: Vec<u32>,
    /// Bumped by every change to the set of live entries (insert, revival,
    /// removal, clear), so a walker can tell that its copy is current.
    version: u64,
}

/// One key and its value.
pub struct Entry<V> {
    /// The low half of the key's hash (the index word holds the high half).
    hash_lo: u32,
    /// The values, concatenated: one comparison, and no allocation when
    /// short.
    key: KeyBytes,
    /// Where each value but the last ends in `key` (the last ends at its
    /// end): no allocation for one value.
    ends: Box<[u32]>,
    value: V,
    removed: AtomicBool,
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
    fn new(hash: u64, values: &[&str], value: V) -> Self {
        let ends = values
            .iter()
            .take(values.len().saturating_sub(1))
            .scan(0usize, |end, v| {
                *end += v.len();
                Some(*end as u32)
            })
            .collect();
        Self { hash_lo: hash as u32, key: KeyBytes::new(values), ends, value, removed: AtomicBool::new(false) }
    }

    /// The value stored for this key.
    pub fn value(&self) -> &V {
        &self.value
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

    /// Whether the key was removed (and not brought back since).
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Relaxed)
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

    fn cmp_values(&self, query: &[&str]) -> std::cmp::Ordering {
        (0..query.len()).map(|i| self.key_value(i)).cmp(query.iter().copied())
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

/// Where slot `i` lives: `(segment, offset)`.
#[inline]
fn slot_position(i: usize) -> (usize, usize) {
    let k = (usize::BITS - 1 - (i / SEGMENT0 + 1).leading_zeros()) as usize;
    (k, i - SEGMENT0 * ((1 << k) - 1))
}

/// An index word: the high 32 bits of the hash, and the slot plus one (0
/// marks an empty bucket).
#[inline]
fn index_word(hash: u64, slot: usize) -> u64 {
    (hash & !0xffff_ffff) | (slot as u64 + 1)
}

impl<V> Inner<V> {
    #[inline(always)]
    fn slot(&self, i: usize) -> Option<&Entry<V>> {
        let (k, off) = slot_position(i);
        self.segments.get(k)?.get()?.get(off)?.0.get()
    }

    /// Finds the entry for `values` in index generation `g`.
    #[inline(always)]
    fn find(&self, g: usize, hash: u64, values: &[&str]) -> Option<&Entry<V>> {
        let index = self.generations.get(g)?.get()?;
        let mask = index.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            // Acquire: pairs with the inserter's Release, so the slot it
            // names is initialised.
            let word = index[i].load(Ordering::Acquire);
            if word == 0 {
                return None;
            }
            if word >> 32 == hash >> 32 {
                let entry = self.slot((word & 0xffff_ffff) as usize - 1)?;
                if entry.hash_lo == hash as u32 && entry.matches(values) {
                    return Some(entry);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The live entry for `values`, if any, without a lock.
    #[inline(always)]
    fn find_live(&self, hash: u64, values: &[&str]) -> Option<&Entry<V>> {
        // Acquire: the generation it names is initialised.
        self.find(self.current.load(Ordering::Acquire), hash, values).filter(|e| !e.is_removed())
    }
}

impl<V: Send + Sync + 'static> StringIndex<V> {
    /// An empty index for keys of `arity` values, holding at most `limit`
    /// live entries (clamped to `1..=2^24`).
    pub fn with_limit(arity: usize, limit: usize) -> Self {
        let generations: [OnceLock<Box<[AtomicU64]>>; LEVELS] = std::array::from_fn(|_| OnceLock::new());
        let _ = generations[0].set((0..INDEX0).map(|_| AtomicU64::new(0)).collect());
        Self {
            inner: Arc::new(Inner {
                arity,
                limit: limit.clamp(1, MAX_LIMIT),
                segments: std::array::from_fn(|_| OnceLock::new()),
                generations,
                current: AtomicUsize::new(0),
                live: AtomicUsize::new(0),
                writers: Mutex::new(Writers { slots: 0, sorted: Vec::new(), version: 0 }),
            }),
        }
    }

    /// The hash [`find`](Self::find), [`get_or_insert_with`](Self::get_or_insert_with)
    /// and [`remove`](Self::remove) take by default. Any other function of
    /// the values works too (a `metrics::Key`'s hash, say) as long as every
    /// call on one index uses the same one: values are always compared
    /// exactly, so collisions cost time, never correctness, but a key looked
    /// up with two different hashes is two keys (as in a `HashMap` whose
    /// `Hash` disagrees with its `Eq`).
    #[inline]
    pub fn hash(values: &[&str]) -> u64 {
        // Fixed seed: hashes are only compared within this process.
        foldhash::fast::FixedState::with_seed(0x6d65_7465_7268_6f74).hash_one(values)
    }

    #[inline]
    fn check_len(&self, values: &[&str]) -> Result<(), LabelCountError> {
        let expected = self.inner.arity;
        if values.len() == expected { Ok(()) } else { Err(LabelCountError { expected, got: values.len() }) }
    }

    /// The live value for `values`, if there is one. Lock-free: the hit path
    /// callers build on.
    #[inline]
    pub fn find(&self, hash: u64, values: &[&str]) -> Result<Option<&V>, LabelCountError> {
        self.check_len(values)?;
        Ok(self.inner.find_live(hash, values).map(|e| &e.value))
    }

    /// Runs `f` on the value for `values`, inserting `make()` first if the
    /// key is new (or bringing a removed key back, value kept). `Ok(None)`
    /// when the key is not live and the index is full; `make` is then not
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
    /// `Ok(None)`, as for a full index. `make` runs only for a key that is
    /// not in the index at all (never for a hit, nor a revival).
    #[inline]
    pub fn get_or_try_insert_with<R>(
        &self,
        hash: u64,
        values: &[&str],
        make: impl FnOnce() -> Option<V>,
        f: impl FnOnce(&V) -> R,
    ) -> Result<Option<R>, LabelCountError> {
        self.check_len(values)?;
        if let Some(entry) = self.inner.find_live(hash, values) {
            return Ok(Some(f(&entry.value)));
        }
        Ok(self.miss(hash, values, make).map(f))
    }

    /// Finds, revives or inserts the entry for `values` under the writers'
    /// lock; `None` when that would exceed the limit or `make` refuses.
    #[cold]
    #[inline(never)]
    fn miss(&self, hash: u64, values: &[&str], make: impl FnOnce() -> Option<V>) -> Option<&V> {
        let inner = &*self.inner;
        // Full already: no lock needed to know the answer, but only after
        // looking the key up again. Our lock-free lookup may have missed
        // just before another thread inserted (or revived) this very key and
        // so filled the index; that entry is ours to use. Acquire pairs with
        // the Release increment of `live` by that writer (writers are
        // serialised by the lock, so every earlier insert or revival
        // happens-before the count we read): the index word and the
        // `removed` flag it wrote are visible to this lookup.
        if inner.live.load(Ordering::Acquire) >= inner.limit {
            return inner
                .find(inner.current.load(Ordering::Acquire), hash, values)
                .filter(|entry| !entry.removed.load(Ordering::Relaxed))
                .map(|entry| &entry.value);
        }
        let mut w = lock(&inner.writers);
        // Another thread may have inserted it (or a newer generation may
        // hold it) while we waited.
        if let Some(entry) = inner.find(inner.current.load(Ordering::Relaxed), hash, values) {
            if entry.removed.load(Ordering::Relaxed) {
                if inner.live.load(Ordering::Relaxed) >= inner.limit {
                    return None;
                }
                entry.removed.store(false, Ordering::Relaxed);
                // Release: publishes the revival to the unlocked full check.
                inner.live.fetch_add(1, Ordering::Release);
                w.version += 1;
            }
            return Some(&entry.value);
        }
        if inner.live.load(Ordering::Relaxed) >= inner.limit || w.slots >= 2 * inner.limit {
            return None;
        }
        let value = make()?;
        let slot = w.slots;
        let (k, off) = slot_position(slot);
        let segment = inner.segments[k].get_or_init(|| (0..SEGMENT0 << k).map(|_| SlotCell(OnceLock::new())).collect());
        let _ = segment[off].0.set(Entry::new(hash, values, value));
        w.slots += 1;
        self.publish(slot, w.slots, hash);
        // Release: publishes the new index word to the unlocked full check.
        inner.live.fetch_add(1, Ordering::Release);
        let at = w.sorted.partition_point(|&j| inner.slot(j as usize).is_some_and(|e| e.cmp_values(values).is_lt()));
        w.sorted.insert(at, slot as u32);
        w.version += 1;
        drop(w);
        inner.slot(slot).map(|entry| &entry.value)
    }

    /// Adds `slot` to the live index, growing it into the next generation
    /// first if `slots` entries would pass half full. Writers' lock held.
    fn publish(&self, slot: usize, slots: usize, hash: u64) {
        let inner = &*self.inner;
        let mut g = inner.current.load(Ordering::Relaxed);
        let capacity = INDEX0 << g;
        if slots * 2 > capacity && g + 1 < LEVELS {
            g += 1;
            let index: Box<[AtomicU64]> = (0..INDEX0 << g).map(|_| AtomicU64::new(0)).collect();
            // Every slot so far has a word in the current generation: its
            // high half and the entry's low half make the whole hash.
            for word in inner.generations[g - 1].get().into_iter().flat_map(|old| old.iter()) {
                let word = word.load(Ordering::Relaxed);
                let s = (word & 0xffff_ffff) as usize;
                if let Some(entry) = s.checked_sub(1).and_then(|s| inner.slot(s)) {
                    insert_word(&index, (word & !0xffff_ffff) | u64::from(entry.hash_lo), s - 1);
                }
            }
            let _ = inner.generations[g].set(index);
            // Release: readers that see the new number see the filled index.
            inner.current.store(g, Ordering::Release);
        }
        if let Some(index) = inner.generations[g].get() {
            insert_word(index, hash, slot);
        }
    }

    /// Marks the entry for `values` (found with `hash`, the same function
    /// of the values every call on this index uses) removed: no longer live,
    /// its place under the limit freed. Returns whether it was live, or
    /// the same error as a lookup when `values` has the wrong length.
    pub fn remove(&self, hash: u64, values: &[&str]) -> Result<bool, LabelCountError> {
        self.check_len(values)?;
        let inner = &*self.inner;
        let mut w = lock(&inner.writers);
        match inner.find(inner.current.load(Ordering::Relaxed), hash, values) {
            Some(entry) if !entry.removed.load(Ordering::Relaxed) => {
                entry.removed.store(true, Ordering::Relaxed);
                inner.live.fetch_sub(1, Ordering::Relaxed);
                w.version += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Marks removed every live entry whose values (in key order) `keep`
    /// rejects, and returns how many. `keep` runs under the writers' lock:
    /// inserts of new keys and walks of the live entries (scrapes) wait for
    /// it (lookups of live keys never do), and it must not call into this
    /// index. It sees every live entry before any is removed, so a `keep`
    /// that panics removes nothing.
    pub fn retain(&self, mut keep: impl FnMut(&[&str]) -> bool) -> usize {
        let inner = &*self.inner;
        let mut w = lock(&inner.writers);
        let mut values: Vec<&str> = Vec::with_capacity(inner.arity);
        let mut rejected = Vec::new();
        for s in 0..w.slots {
            let Some(entry) = inner.slot(s) else { continue };
            if entry.removed.load(Ordering::Relaxed) {
                continue;
            }
            values.clear();
            values.extend((0..inner.arity).map(|i| entry.key_value(i)));
            if !keep(&values) {
                rejected.push(entry);
            }
        }
        for entry in &rejected {
            entry.removed.store(true, Ordering::Relaxed);
            inner.live.fetch_sub(1, Ordering::Relaxed);
        }
        if !rejected.is_empty() {
            w.version += 1;
        }
        rejected.len()
    }

    /// Marks every entry removed.
    pub fn clear(&self) {
        let inner = &*self.inner;
        let mut w = lock(&inner.writers);
        for s in 0..w.slots {
            if let Some(entry) = inner.slot(s) {
                entry.removed.store(true, Ordering::Relaxed);
            }
        }
        inner.live.store(0, Ordering::Relaxed);
        w.version += 1;
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

    /// Distinct keys ever inserted (live or removed): at most twice the limit.
    pub fn remembered(&self) -> usize {
        lock(&self.inner.writers).slots
    }

    /// Copies the slot numbers of every entry, in key-value order, into
    /// `order` (cleared first). Takes the writers' lock for the copy only,
    /// so inserts never wait for a caller's walk.
    pub fn sorted_slots_into(&self, order: &mut Vec<u32>) {
        order.clear();
        order.extend_from_slice(&lock(&self.inner.writers).sorted);
    }

    /// If the set of live entries changed since version `seen` (or `seen`
    /// is `None`), copies the slots of the live entries, in key-value
    /// order, into `order` (cleared first) and returns the current version;
    /// otherwise leaves `order` alone and returns `None`. One short lock;
    /// inserts never wait for the caller's walk.
    pub fn live_sorted_slots_since(&self, seen: Option<u64>, order: &mut Vec<u32>) -> Option<u64> {
        let inner = &*self.inner;
        let w = lock(&inner.writers);
        if seen == Some(w.version) {
            return None;
        }
        order.clear();
        order.extend(w.sorted.iter().copied().filter(|&s| inner.slot(s as usize).is_some_and(|e| !e.is_removed())));
        Some(w.version)
    }

    /// The entry in `slot` (from [`sorted_slots_into`](Self::sorted_slots_into)),
    /// removed or not.
    pub fn entry(&self, slot: u32) -> Option<&Entry<V>> {
        self.inner.slot(slot as usize)
    }

    /// Whether two handles are the same index.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The index generation in use (tests of growth).
    #[cfg(test)]
    pub(crate) fn generation(&self) -> usize {
        self.inner.current.load(Ordering::Relaxed)
    }
}

/// Reads a stored key by slot, for label values that an encoder asks for
/// lazily ([`Labels`](crate::expose::Labels) of a string family's series).
pub(crate) trait KeySource: Sync {
    /// The key in `slot`: its values concatenated, and where each ends.
    fn key(&self, slot: u32) -> Option<(&str, &[u32])>;
}

impl<V: Send + Sync + 'static> KeySource for StringIndex<V> {
    fn key(&self, slot: u32) -> Option<(&str, &[u32])> {
        self.inner.slot(slot as usize).map(Entry::joined_key)
    }
}

/// Inserts an index word with linear probing (the caller holds the writers'
/// lock and keeps the index at most half full).
fn insert_word(index: &[AtomicU64], hash: u64, slot: usize) {
    let mask = index.len() - 1;
    let mut i = hash as usize & mask;
    while index[i].load(Ordering::Relaxed) != 0 {
        i = (i + 1) & mask;
    }
    // Release: publishes the slot's entry to readers that see this word.
    index[i].store(index_word(hash, slot), Ordering::Release);
}

#[cfg(all(test, not(hotmeter_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_counters_slot_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<SlotCell<crate::Counter>>(), 64);
        assert_eq!(std::mem::align_of::<SlotCell<crate::Counter>>(), 64);
    }

    #[test]
    fn growth_keeps_every_key_findable() {
        let index: StringIndex<usize> = StringIndex::with_limit(2, 5_000);
        let keys: Vec<[String; 2]> = (0..5_000).map(|i| [i.to_string(), (i * 7).to_string()]).collect();
        for (i, k) in keys.iter().enumerate() {
            let v = [k[0].as_str(), k[1].as_str()];
            assert_eq!(index.get_or_insert_with(StringIndex::<usize>::hash(&v), &v, || i, |x| *x).unwrap(), Some(i));
        }
        for (i, k) in keys.iter().enumerate() {
            let v = [k[0].as_str(), k[1].as_str()];
            assert_eq!(index.find(StringIndex::<usize>::hash(&v), &v).unwrap().copied(), Some(i), "{v:?}");
        }
        assert!(index.generation() >= 8, "the index grew through several generations");
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
            let entry = Entry::new(0, &st, ());
            prop_assert_eq!(entry.matches(&q), stored == query);
            prop_assert!(entry.matches(&st));
            for (i, v) in st.iter().enumerate() {
                prop_assert_eq!(entry.key_value(i), *v);
            }
        }
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
    fn full_index_refuses_new_keys_and_keeps_old_ones() {
        let index: StringIndex<u32> = StringIndex::with_limit(1, 2);
        let put =
            |k: &str, v: u32| index.get_or_insert_with(StringIndex::<u32>::hash(&[k]), &[k], || v, |v| *v).unwrap();
        assert_eq!(put("a", 1), Some(1));
        assert_eq!(put("b", 2), Some(2));
        assert_eq!(put("c", 3), None, "full");
        assert_eq!(put("a", 9), Some(1), "an existing key is found at the limit");
        assert_eq!(index.remove(StringIndex::<u32>::hash(&["a"]), &["a"]), Ok(true));
        assert_eq!(index.find(StringIndex::<u32>::hash(&["a"]), &["a"]).unwrap().copied(), None, "removed is not live");
        assert_eq!(put("c", 3), Some(3), "room again");
        assert_eq!(put("a", 9), None, "full again: a removed key does not come back over the limit");
        index.clear();
        assert!(index.is_empty());
        assert_eq!(put("a", 9), Some(1), "a revived key keeps its value");
        assert_eq!(index.remembered(), 3);
        let mut order = Vec::new();
        index.sorted_slots_into(&mut order);
        let keys: Vec<&str> = order.iter().map(|&s| index.entry(s).unwrap().key_value(0)).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(index.find(0, &["x", "y"]).unwrap_err(), LabelCountError { expected: 1, got: 2 });
    }

    #[test]
    fn a_callers_own_hash_works_for_every_operation() {
        let index: StringIndex<u32> = StringIndex::with_limit(1, 10);
        let custom = 42u64;
        assert_eq!(index.get_or_insert_with(custom, &["a"], || 1, |v| *v).unwrap(), Some(1));
        assert_eq!(index.find(custom, &["a"]).unwrap().copied(), Some(1));
        assert_eq!(index.remove(custom, &["a"]), Ok(true));
        assert_eq!(index.find(custom, &["a"]).unwrap().copied(), None);
        assert_eq!(index.get_or_try_insert_with(custom, &["b"], || None, |v| *v).unwrap(), None, "refused");
        assert_eq!(index.remembered(), 1, "a refused key takes no slot");
    }

    #[test]
    fn growth_keeps_keys_findable_under_callers_own_degenerate_hashes() {
        // A caller's hash may use only one half of the word, or be constant:
        // growth rebuilds each hash from the index word's high half and the
        // entry's low half, so every key stays findable (and removable).
        type Hash = fn(u64) -> u64;
        let hashes: [(&str, Hash); 4] = [
            ("constant", |_| 7),
            ("low half only", |i| i.wrapping_mul(0x9e37_79b9) & 0xffff_ffff),
            ("high half only", |i| i.wrapping_mul(0x9e37_79b9) << 32),
            ("all ones", |_| u64::MAX),
        ];
        for (what, hash) in hashes {
            let index: StringIndex<u64> = StringIndex::with_limit(1, 1_000);
            for i in 0..600u64 {
                let k = i.to_string();
                assert_eq!(index.get_or_insert_with(hash(i), &[&k], || i, |v| *v).unwrap(), Some(i), "{what}");
            }
            assert!(index.generation() >= 5, "{what}: grew");
            for i in 0..600u64 {
                let k = i.to_string();
                assert_eq!(index.find(hash(i), &[&k]).unwrap().copied(), Some(i), "{what}: key {i}");
            }
            assert_eq!(index.remove(hash(599), &["599"]), Ok(true), "{what}");
            assert_eq!(index.find(hash(599), &["599"]).unwrap(), None, "{what}");
            assert_eq!(
                index.get_or_insert_with(hash(599), &["599"], || 0, |v| *v).unwrap(),
                Some(599),
                "{what}: revived"
            );
        }
    }

    #[test]
    fn index_grows_through_generations() {
        let index: StringIndex<usize> = StringIndex::with_limit(1, 5000);
        for i in 0..3000 {
            let k = format!("id-{i}");
            index.get_or_insert_with(StringIndex::<usize>::hash(&[&k]), &[&k], || i, |_| ()).unwrap();
        }
        assert_eq!(index.len(), 3000);
        assert!(index.generation() >= 7, "3000 entries need 8192 buckets");
        for i in 0..3000 {
            let k = format!("id-{i}");
            assert_eq!(index.find(StringIndex::<usize>::hash(&[&k]), &[&k]).unwrap().copied(), Some(i));
        }
    }
}
