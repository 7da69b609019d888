//! The protobuf wire format, written straight into a `Vec<u8>`: tags,
//! varints, fixed-width numbers, strings, and length-delimited messages
//! whose length is reserved before their body and settled after it.
//!
//! Owns: the encoding rules of <https://protobuf.dev/programming-guides/encoding/>
//! and nothing of any schema. Every protobuf body hotmeter writes goes
//! through here: the Prometheus protobuf exposition format (this crate)
//! and the push crate's OTLP and remote_write bodies. Must not: know field
//! numbers or messages (the encoders do), or allocate beyond growing the
//! caller's buffer.
//!
//! Hand-written rather than prost's `encoding` helpers: these write into a
//! `Vec` with a one-byte fast path, need no `BufMut`, and let an encoder
//! write a message without building its struct first (prost needs the
//! whole message tree, every string owned, before it can size and write
//! it; the encode benchmarks show that tree is most of its cost).
//!
//! Nested lengths: a message's length comes before its bytes. A small
//! message whose size is known up front gets it computed exactly (with
//! [`varint_len`]). The rest [`open`] with a guessed width for the length,
//! are written, and [`close`] writes the length, shifting the body when it
//! needs another width (rare when the guess is the width the previous
//! message of the same kind needed).
//!
//! ```
//! use hotmeter_format::wire;
//! let mut out = Vec::new();
//! wire::tag(&mut out, 1, wire::LEN);
//! let open = wire::open(&mut out, 1);
//! wire::string(&mut out, 1, "hi");
//! wire::fixed64(&mut out, 2, 7);
//! assert_eq!(wire::close(&mut out, open), 1);
//! assert_eq!(out, [0x0a, 13, 0x0a, 2, b'h', b'i', 0x11, 7, 0, 0, 0, 0, 0, 0, 0]);
//! ```

/// Wire type of varints.
pub const VARINT: u8 = 0;
/// Wire type of 64-bit fixed values (doubles, `fixed64`, `sfixed64`).
pub const I64: u8 = 1;
/// Wire type of length-delimited values (strings, bytes, messages,
/// packed repeated scalars).
pub const LEN: u8 = 2;

/// A field's key: its number and wire type.
#[inline(always)]
pub fn tag(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    varint(out, u64::from(number << 3 | u32::from(wire_type)));
}

/// Bytes a field's key takes.
#[inline(always)]
pub fn tag_len(number: u32) -> usize {
    varint_len(u64::from(number << 3))
}

/// A base-128 varint, least significant group first.
///
/// Always inlined (one byte, a tag or a short length, is the common case;
/// a key's value is usually a constant that folds): the encode benchmarks
/// showed it as a call of its own, a fifth of an OTLP export, when left to
/// the compiler across crates.
#[inline(always)]
pub fn varint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else {
        varint_long(out, v);
    }
}

#[inline(never)]
fn varint_long(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 10];
    let n = varint_into(&mut buf, v);
    out.extend_from_slice(&buf[..n]);
}

/// Writes `v` as a varint at the start of `buf`; returns its length.
#[inline]
pub fn varint_into(buf: &mut [u8; 10], mut v: u64) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        buf[i] = v as u8 | 0x80;
        v >>= 7;
        i += 1;
    }
    buf[i] = v as u8;
    i + 1
}

/// Bytes the varint of `v` takes (1 to 10).
#[inline(always)]
pub fn varint_len(v: u64) -> usize {
    if v < 0x80 {
        return 1;
    }
    // Significant bits, rounded up to groups of 7.
    (64 - v.leading_zeros() as usize).div_ceil(7)
}

/// ZigZag: `sint32`/`sint64` map small magnitudes of either sign to small
/// varints (0, -1, 1, -2 ... to 0, 1, 2, 3 ...).
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// A varint field (`uint32`, `uint64`, `bool`, enums; `int64` as its
/// two's complement; `sint*` after [`zigzag`]).
#[inline(always)]
pub fn varint_field(out: &mut Vec<u8>, number: u32, v: u64) {
    tag(out, number, VARINT);
    varint(out, v);
}

/// A `double` field.
#[inline(always)]
pub fn double(out: &mut Vec<u8>, number: u32, v: f64) {
    tag(out, number, I64);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A `fixed64` field (`sfixed64` as its two's complement).
#[inline(always)]
pub fn fixed64(out: &mut Vec<u8>, number: u32, v: u64) {
    tag(out, number, I64);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A `string` field.
#[inline(always)]
pub fn string(out: &mut Vec<u8>, number: u32, s: &str) {
    bytes(out, number, s.as_bytes());
}

/// A `bytes` field (or a message already encoded).
#[inline(always)]
pub fn bytes(out: &mut Vec<u8>, number: u32, b: &[u8]) {
    tag(out, number, LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Bytes a `string`/`bytes` field of `len` bytes takes, key included.
#[inline(always)]
pub fn bytes_field_len(number: u32, len: usize) -> usize {
    tag_len(number) + varint_len(len as u64) + len
}

/// Up to four 64-bit fields (`fixed64`, `sfixed64`, `double`) of field
/// numbers 1 to 15, gathered on the stack and appended with one copy: a
/// data point's times and value cost one capacity check instead of three.
///
/// ```
/// use hotmeter_format::wire::{self, FixedFields};
/// let mut fields = FixedFields::default();
/// fields.fixed64(2, 0x0102);
/// fields.double(4, 1.5);
/// let mut direct = Vec::new();
/// wire::fixed64(&mut direct, 2, 0x0102);
/// wire::double(&mut direct, 4, 1.5);
/// let mut out = Vec::new();
/// fields.append_to(&mut out);
/// assert_eq!(out, direct);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct FixedFields {
    buf: [u8; 36],
    len: usize,
}

impl Default for FixedFields {
    fn default() -> Self {
        Self { buf: [0; 36], len: 0 }
    }
}

impl FixedFields {
    /// A `fixed64` field (`sfixed64` as its two's complement).
    ///
    /// # Panics
    /// On a fifth field, or a field number above 15 (two-byte key): both
    /// mistakes of the encoder's, not of its input.
    #[inline(always)]
    pub fn fixed64(&mut self, number: u32, v: u64) {
        assert!((1..16).contains(&number), "field {number} has a key of more than one byte");
        let at = self.len;
        self.buf[at] = (number << 3) as u8 | I64;
        self.buf[at + 1..at + 9].copy_from_slice(&v.to_le_bytes());
        self.len = at + 9;
    }

    /// A `double` field.
    #[inline(always)]
    pub fn double(&mut self, number: u32, v: f64) {
        self.fixed64(number, v.to_bits());
    }

    /// Appends the fields gathered, in the order they were given.
    #[inline(always)]
    pub fn append_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.buf[..self.len]);
    }
}

/// A length-delimited value being written: where its body starts and how
/// many bytes were reserved before it for its length.
#[derive(Clone, Copy, Debug)]
pub struct Open {
    body: usize,
    width: usize,
}

/// Reserves `guess` bytes (1 to 10) for a length; the tag, if any, is
/// already written.
#[inline(always)]
pub fn open(out: &mut Vec<u8>, guess: usize) -> Open {
    let guess = guess.clamp(1, 10);
    if guess == 1 {
        out.push(0);
    } else {
        out.extend_from_slice(&[0u8; 10][..guess]);
    }
    Open { body: out.len(), width: guess }
}

/// Writes the length of the body since `open`, shifting the body when the
/// length takes more or fewer bytes than were reserved; returns how many
/// it took (the next message of the same kind's best guess).
#[inline]
pub fn close(out: &mut Vec<u8>, open: Open) -> usize {
    let len = out.len() - open.body;
    let start = open.body - open.width;
    if len < 0x80 && open.width == 1 {
        out[start] = len as u8;
        return 1;
    }
    let width = varint_len(len as u64);
    shift_body(out, open, width);
    let mut buf = [0u8; 10];
    varint_into(&mut buf, len as u64);
    out[start..start + width].copy_from_slice(&buf[..width]);
    width
}

#[cold]
fn shift_body(out: &mut Vec<u8>, open: Open, width: usize) {
    let end = out.len();
    if width > open.width {
        let by = width - open.width;
        out.resize(end + by, 0);
        out.copy_within(open.body..end, open.body + by);
    } else if width < open.width {
        let by = open.width - width;
        out.copy_within(open.body..end, open.body - by);
        out.truncate(end - by);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_their_lengths_agree_at_every_width() {
        for shift in 0..64 {
            for v in [(1u64 << shift) - 1, 1u64 << shift, (1u64 << shift) + 1] {
                let mut out = Vec::new();
                varint(&mut out, v);
                assert_eq!(out.len(), varint_len(v), "{v}");
                // Least significant group first, continuation bits on all
                // but the last byte.
                let back = out.iter().rev().fold(0u64, |acc, &b| acc << 7 | u64::from(b & 0x7f));
                assert_eq!(back, v);
                assert!(out[..out.len() - 1].iter().all(|b| b & 0x80 != 0) && out[out.len() - 1] & 0x80 == 0);
            }
        }
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(i64::MIN), u64::MAX);
    }

    #[test]
    fn varints_and_lengths_read_back_with_prost() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, 1 << 56, u64::MAX] {
            let mut buf = [0u8; 10];
            let n = varint_into(&mut buf, v);
            assert_eq!(n, varint_len(v), "{v}");
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out, buf[..n]);
            assert_eq!(prost::encoding::decode_varint(&mut &out[..]).unwrap(), v);
        }
        assert_eq!([0, -1, 1, -2, 2].map(zigzag), [0, 1, 2, 3, 4]);
        assert_eq!(zigzag(i64::MIN), u64::MAX);
        // A length that outgrows its reserved byte, and one that needs fewer.
        for (guess, len) in [(1usize, 300usize), (3, 5), (3, 70_000), (2, 200)] {
            let mut out = vec![0xaa];
            let o = open(&mut out, guess);
            out.extend((0..len).map(|i| i as u8));
            let width = close(&mut out, o);
            assert_eq!(width, varint_len(len as u64));
            let mut rest = &out[1..];
            assert_eq!(prost::encoding::decode_varint(&mut rest).unwrap(), len as u64);
            assert_eq!(rest.len(), len);
            assert!(rest.iter().enumerate().all(|(i, &b)| b == i as u8));
        }
    }
}
