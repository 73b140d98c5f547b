//! The reader behind the validating walk: one message's fields, with offsets
//! relative to the whole request so errors can point at the byte.

use super::fault::{Res, Seg, fault};

pub(crate) const VARINT: u8 = 0;
pub(crate) const I64: u8 = 1;
pub(crate) const LEN: u8 = 2;
pub(crate) const I32: u8 = 5;

pub(crate) const BAD_WIRE_TYPE: &str =
    "malformed protobuf: unsupported wire type (groups and wire types 6-7 are not used by OTLP)";
const TRUNCATED: &str = "malformed protobuf: field runs past the end of its message";

/// Decodes a varint at `pos`, returning it and the position after it. Refuses
/// what prost and Go protobuf refuse: more than 10 bytes, or a 10th byte that
/// overflows 64 bits.
#[inline]
pub(crate) fn read_varint(buf: &[u8], pos: usize) -> Result<(u64, usize), &'static str> {
    match buf.get(pos) {
        Some(&b) if b < 0x80 => Ok((u64::from(b), pos + 1)),
        _ => read_varint_slow(buf, pos),
    }
}

#[cold]
fn read_varint_slow(buf: &[u8], pos: usize) -> Result<(u64, usize), &'static str> {
    let mut value = 0u64;
    for i in 0..10 {
        let Some(&b) = buf.get(pos + i) else {
            return Err("malformed protobuf: truncated varint");
        };
        if i == 9 && b > 1 {
            return Err("malformed protobuf: varint overflows 64 bits");
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok((value, pos + i + 1));
        }
    }
    Err("malformed protobuf: varint longer than 10 bytes")
}

/// Bytes that a varint of `v` takes.
pub(crate) fn varint_len(v: u64) -> usize {
    // One byte per started 7 bits, and one for 0.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` in the whole request.
    base: usize,
    /// Where the current field's key starts, for errors about the field itself.
    key_at: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Cursor {
            buf,
            pos: 0,
            base,
            key_at: base,
        }
    }

    /// Offset in the request of what is read next.
    #[inline]
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    #[inline(always)]
    fn varint(&mut self) -> Res<u64> {
        match read_varint(self.buf, self.pos) {
            Ok((v, next)) => {
                self.pos = next;
                Ok(v)
            }
            Err(what) => Err(fault(what, self.offset())),
        }
    }

    /// The next field's (number, wire type), or None at the end of the message.
    #[inline(always)]
    pub(crate) fn key(&mut self) -> Res<Option<(u32, u8)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        self.key_at = self.offset();
        let key = self.varint()?;
        // As prost: a key is 32 bits, so field numbers stop at 2^29 - 1.
        let Ok(key) = u32::try_from(key) else {
            return Err(fault("malformed protobuf: field number too large", self.key_at));
        };
        let (number, wire_type) = (key >> 3, (key & 7) as u8);
        if number == 0 {
            return Err(fault("malformed protobuf: field number 0", self.key_at));
        }
        if !matches!(wire_type, VARINT | I64 | LEN | I32) {
            return Err(fault(BAD_WIRE_TYPE, self.key_at));
        }
        Ok(Some((number, wire_type)))
    }

    #[inline(always)]
    fn advance(&mut self, n: usize) -> Res<&'a [u8]> {
        match self.pos.checked_add(n).filter(|&e| e <= self.buf.len()) {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(fault(TRUNCATED, self.offset())),
        }
    }

    /// Skips a value of an unknown field (or of a known one not looked into).
    #[inline(always)]
    pub(crate) fn skip(&mut self, wire_type: u8) -> Res<()> {
        match wire_type {
            VARINT => self.varint().map(drop),
            I64 => self.advance(8).map(drop),
            LEN => self.bytes_unchecked().map(drop),
            _ => self.advance(4).map(drop),
        }
    }

    #[inline(always)]
    fn bytes_unchecked(&mut self) -> Res<(&'a [u8], usize)> {
        let len = self.varint()?;
        let at = self.offset();
        let len = usize::try_from(len).map_err(|_| fault(TRUNCATED, at))?;
        Ok((self.advance(len)?, at))
    }

    #[cold]
    fn wrong_type(&self, got: u8, want: u8, name: &'static str) -> Box<super::fault::Fault> {
        let what = match want {
            VARINT => "malformed protobuf: wrong wire type; the OTLP schema has a varint here",
            I64 => "malformed protobuf: wrong wire type; the OTLP schema has a 64-bit value here",
            LEN => "malformed protobuf: wrong wire type; the OTLP schema has a length-delimited value here",
            _ => "malformed protobuf: wrong wire type; the OTLP schema has a 32-bit value here",
        };
        fault(what, self.key_at)
            .note(format!("found wire type {got}"))
            .at(Seg::Field(name))
    }

    /// A length-delimited field's bytes and their offset in the request.
    #[inline(always)]
    pub(crate) fn len(&mut self, wire_type: u8, name: &'static str) -> Res<(&'a [u8], usize)> {
        if wire_type != LEN {
            return Err(self.wrong_type(wire_type, LEN, name));
        }
        self.bytes_unchecked().map_err(|f| f.at(Seg::Field(name)))
    }

    /// A `string` field: length-delimited and UTF-8.
    #[inline(always)]
    pub(crate) fn string(&mut self, wire_type: u8, name: &'static str) -> Res<()> {
        let (b, at) = self.len(wire_type, name)?;
        utf8(b, at).map_err(|f| f.at(Seg::Field(name)))
    }

    /// A scalar field of the given wire type, skipped once its framing is checked.
    #[inline(always)]
    pub(crate) fn scalar(&mut self, wire_type: u8, want: u8, name: &'static str) -> Res<()> {
        if wire_type != want {
            return Err(self.wrong_type(wire_type, want, name));
        }
        self.skip(wire_type).map_err(|f| f.at(Seg::Field(name)))
    }

    /// A repeated scalar field: packed (length-delimited) or one element.
    pub(crate) fn repeated(&mut self, wire_type: u8, element: u8, name: &'static str) -> Res<()> {
        if wire_type != LEN {
            return self.scalar(wire_type, element, name);
        }
        let (b, at) = self.len(wire_type, name)?;
        let mut packed = Cursor::new(b, at);
        while packed.pos < b.len() {
            packed.skip(element).map_err(|f| f.at(Seg::Field(name)))?;
        }
        Ok(())
    }
}

/// Whether `b` is all ASCII. An OR-reduction without early exit, which the
/// compiler vectorises; std's `is_ascii` goes byte by byte on short slices.
#[inline]
pub(crate) fn is_ascii(b: &[u8]) -> bool {
    b.iter().fold(0u8, |acc, &x| acc | x) < 0x80
}

/// Checks that a string field is UTF-8, as prost and Go protobuf do when decoding.
#[inline]
pub(crate) fn utf8(b: &[u8], at: usize) -> Res<()> {
    if is_ascii(b) {
        return Ok(());
    }
    match std::str::from_utf8(b) {
        Ok(_) => Ok(()),
        Err(e) => Err(fault("invalid UTF-8", at + e.valid_up_to())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(varint_len(v), out.len(), "{v}");
            assert_eq!(read_varint(&out, 0), Ok((v, out.len())));
        }
    }

    #[test]
    fn refuses_overflowing_varints() {
        let mut ten = vec![0xff; 9];
        ten.push(0x02);
        assert!(read_varint(&ten, 0).is_err());
        assert!(read_varint(&[0x80; 11], 0).is_err());
        assert!(read_varint(&[0x80, 0x80], 0).is_err());
    }
}
