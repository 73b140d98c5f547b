//! A minimal protobuf wire-format reader. The converters walk the encoded OTLP
//! request with it and copy strings straight from the payload into Arrow
//! builders, instead of decoding into message trees first (which allocates a
//! `String` per attribute key and value and costs more than the conversion).

/// What is wrong with a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {offset}")]
pub struct WireError {
    pub what: &'static str,
    pub offset: usize,
}

/// One field's value as read off the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

impl<'a> Field<'a> {
    pub fn varint(self) -> u64 {
        match self {
            Field::Varint(v) => v,
            _ => 0,
        }
    }

    pub fn fixed64(self) -> u64 {
        match self {
            Field::Fixed64(v) => v,
            _ => 0,
        }
    }

    pub fn fixed32(self) -> u32 {
        match self {
            Field::Fixed32(v) => v,
            _ => 0,
        }
    }

    pub fn bytes(self) -> &'a [u8] {
        match self {
            Field::Bytes(b) => b,
            _ => &[],
        }
    }
}

/// The fields of one encoded message, in wire order.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn err(&self, what: &'static str) -> WireError {
        WireError {
            what,
            offset: self.pos,
        }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err("truncated varint"));
            };
            self.pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err("field runs past the end of its message"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn field(&mut self) -> Result<(u32, Field<'a>), WireError> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| self.err("field number out of range"))?;
        if number == 0 {
            return Err(self.err("field number 0"));
        }
        let value = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => Field::Fixed64(u64::from_le_bytes(self.array()?)),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| self.err("length out of range"))?;
                Field::Bytes(self.take(len)?)
            }
            5 => Field::Fixed32(u32::from_le_bytes(self.array()?)),
            _ => return Err(self.err("unsupported wire type (groups are not used by OTLP)")),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<(u32, Field<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let r = self.field();
        if r.is_err() {
            self.pos = self.buf.len();
        }
        Some(r)
    }
}

/// A string field's text.
pub fn text(b: &[u8]) -> Result<&str, WireError> {
    std::str::from_utf8(b).map_err(|e| WireError {
        what: "invalid UTF-8 in a string field",
        offset: e.valid_up_to(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_wire_type() {
        // 1: varint 300, 2: "hi", 3: fixed64 7, 4: fixed32 9
        let buf = [
            0x08, 0xac, 0x02, 0x12, 0x02, b'h', b'i', 0x19, 7, 0, 0, 0, 0, 0, 0, 0, 0x25, 9, 0, 0, 0,
        ];
        let fields: Vec<_> = Reader::new(&buf).collect::<Result<_, _>>().expect("valid");
        assert_eq!(
            fields,
            [
                (1, Field::Varint(300)),
                (2, Field::Bytes(b"hi")),
                (3, Field::Fixed64(7)),
                (4, Field::Fixed32(9)),
            ]
        );
    }

    #[test]
    fn rejects_truncation_and_groups() {
        assert!(Reader::new(&[0x12, 0x05, b'a']).any(|r| r.is_err()));
        assert!(Reader::new(&[0x08, 0xff]).any(|r| r.is_err()));
        assert!(Reader::new(&[0x0b]).any(|r| r.is_err()));
        assert!(text(&[0xff, 0xfe]).is_err());
    }
}
