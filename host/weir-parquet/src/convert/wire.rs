//! A protobuf wire-format reader for the converters (over weir-otlp's walker,
//! `weir_otlp::wire::Fields`). The converters walk the encoded OTLP request with it and copy strings straight from the payload into Arrow
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

/// The fields of one encoded message, in wire order: weir-otlp's wire walker,
/// with this module's value accessors and error type.
pub struct Reader<'a> {
    fields: weir_otlp::wire::Fields<'a>,
    failed: bool,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            fields: weir_otlp::wire::Fields::new(buf),
            failed: false,
        }
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<(u32, Field<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        use weir_otlp::wire::Value;
        if self.failed {
            return None;
        }
        let r = self.fields.next_field()?;
        Some(match r {
            Ok((number, value, _)) => Ok((
                number,
                match value {
                    Value::Varint(v) => Field::Varint(v),
                    Value::Fixed64(v) => Field::Fixed64(v),
                    Value::Fixed32(v) => Field::Fixed32(v),
                    Value::Bytes(b) => Field::Bytes(b),
                },
            )),
            Err(e) => {
                // A malformed field ends the message: nothing after it can be framed.
                self.failed = true;
                Err(WireError {
                    what: e.what,
                    offset: e.offset,
                })
            }
        })
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
