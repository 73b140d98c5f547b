//! One encoded span located on the wire (fields borrowed from the payload).

use super::wire::{Field, Reader, WireError, text};
use crate::schema::{SPAN_ID_LEN, TRACE_ID_LEN};

const TRACE_ID: usize = TRACE_ID_LEN as usize;
const SPAN_ID: usize = SPAN_ID_LEN as usize;

/// One encoded span, its fields located but not copied.
#[derive(Default)]
pub struct SpanRef<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub trace_state: &'a str,
    pub parent_span_id: &'a [u8],
    pub flags: u32,
    pub name: &'a str,
    pub kind: i32,
    pub start: u64,
    pub end: u64,
    pub attributes: Vec<&'a [u8]>,
    pub dropped_attributes: u32,
    pub events: Vec<&'a [u8]>,
    pub dropped_events: u32,
    pub links: Vec<LinkRef<'a>>,
    pub dropped_links: u32,
    pub status_message: &'a str,
    pub status_code: i32,
}

#[derive(Default)]
pub struct LinkRef<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub trace_state: &'a str,
    pub attributes: Vec<&'a [u8]>,
    pub dropped_attributes: u32,
    pub flags: u32,
}

impl<'a> SpanRef<'a> {
    /// Reads `b` into `self`, reusing its vectors.
    pub fn read(&mut self, b: &'a [u8]) -> Result<(), WireError> {
        self.trace_id = &[];
        self.span_id = &[];
        self.trace_state = "";
        self.parent_span_id = &[];
        self.flags = 0;
        self.name = "";
        self.kind = 0;
        self.start = 0;
        self.end = 0;
        self.attributes.clear();
        self.dropped_attributes = 0;
        self.events.clear();
        self.dropped_events = 0;
        self.links.clear();
        self.dropped_links = 0;
        self.status_message = "";
        self.status_code = 0;
        for f in Reader::new(b) {
            match f? {
                (1, v) => self.trace_id = v.bytes(),
                (2, v) => self.span_id = v.bytes(),
                (3, v) => self.trace_state = text(v.bytes())?,
                (4, v) => self.parent_span_id = v.bytes(),
                (16, v) => self.flags = v.fixed32(),
                (5, v) => self.name = text(v.bytes())?,
                (6, v) => self.kind = v.varint() as i32,
                (7, v) => self.start = v.fixed64(),
                (8, v) => self.end = v.fixed64(),
                (9, Field::Bytes(kv)) => self.attributes.push(kv),
                (10, v) => self.dropped_attributes = v.varint() as u32,
                (11, Field::Bytes(e)) => self.events.push(e),
                (12, v) => self.dropped_events = v.varint() as u32,
                (13, Field::Bytes(l)) => self.links.push(LinkRef::read(l)?),
                (14, v) => self.dropped_links = v.varint() as u32,
                (15, Field::Bytes(st)) => {
                    for f in Reader::new(st) {
                        match f? {
                            (2, v) => self.status_message = text(v.bytes())?,
                            (3, v) => self.status_code = v.varint() as i32,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Why the span cannot be archived (its ids do not fit the fixed-size columns).
    pub fn invalid_ids(&self) -> Option<&'static str> {
        if self.trace_id.len() != TRACE_ID {
            return Some("trace_id is not 16 bytes");
        }
        if self.span_id.len() != SPAN_ID {
            return Some("span_id is not 8 bytes");
        }
        if !self.parent_span_id.is_empty() && self.parent_span_id.len() != SPAN_ID {
            return Some("parent_span_id is neither empty nor 8 bytes");
        }
        if self
            .links
            .iter()
            .any(|l| l.trace_id.len() != TRACE_ID || l.span_id.len() != SPAN_ID)
        {
            return Some("a link's trace_id or span_id has the wrong length");
        }
        None
    }
}

impl<'a> LinkRef<'a> {
    pub fn read(b: &'a [u8]) -> Result<Self, WireError> {
        let mut l = LinkRef::default();
        for f in Reader::new(b) {
            match f? {
                (1, v) => l.trace_id = v.bytes(),
                (2, v) => l.span_id = v.bytes(),
                (3, v) => l.trace_state = text(v.bytes())?,
                (4, Field::Bytes(kv)) => l.attributes.push(kv),
                (5, v) => l.dropped_attributes = v.varint() as u32,
                (6, v) => l.flags = v.fixed32(),
                _ => {}
            }
        }
        Ok(l)
    }
}
