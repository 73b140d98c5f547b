//! A field-by-field reader of one encoded message, for code outside this module
//! that walks already validated requests (e.g. the Parquet converters).

use super::WireError;
use super::cursor::read_varint;

/// Why a message could not be framed: small, so that walking fields in hot
/// loops returns in registers (a [`WireError`] carries a path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {offset}")]
pub struct FieldError {
    pub what: &'static str,
    pub offset: usize,
}

impl From<FieldError> for WireError {
    fn from(e: FieldError) -> Self {
        WireError::framing(e.what, e.offset)
    }
}

/// One field as read off the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

/// Iterates over the fields of one encoded message.
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0 }
    }

    /// Where the next field's key starts (the end of the last field read).
    pub fn position(&self) -> usize {
        self.pos
    }

    #[cold]
    fn err(&self, what: &'static str) -> FieldError {
        FieldError {
            what,
            offset: self.pos,
        }
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, FieldError> {
        let (v, next) = read_varint(self.buf, self.pos).map_err(|what| self.err(what))?;
        self.pos = next;
        Ok(v)
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], FieldError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err("malformed protobuf: field runs past the end of its message"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], FieldError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// The next field as (number, value, offset of the value in this message).
    #[inline]
    pub fn next_field(&mut self) -> Option<Result<(u32, Value<'a>, usize), FieldError>> {
        if self.pos >= self.buf.len() {
            return None;
        }
        Some(self.read_field())
    }

    #[inline]
    fn read_field(&mut self) -> Result<(u32, Value<'a>, usize), FieldError> {
        let key = self.varint()?;
        // As prost: keys are 32-bit, so field numbers stop at 2^29 - 1.
        let key = u32::try_from(key).map_err(|_| self.err("malformed protobuf: field number too large"))?;
        let number = key >> 3;
        if number == 0 {
            return Err(self.err("malformed protobuf: field number 0"));
        }
        let start = self.pos;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(self.array()?)),
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| self.err("malformed protobuf: length too large"))?;
                let start_of_bytes = self.pos;
                let b = self.take(len)?;
                return Ok((number, Value::Bytes(b), start_of_bytes));
            }
            5 => Value::Fixed32(u32::from_le_bytes(self.array()?)),
            _ => return Err(self.err(super::cursor::BAD_WIRE_TYPE)),
        };
        Ok((number, value, start))
    }
}
