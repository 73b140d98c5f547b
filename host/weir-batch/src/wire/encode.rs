//! Output of the wire form: the envelope (resource and scope containers) is
//! written afresh around the messages' bytes, which are copied as they are,
//! whether they came from the request or were re-encoded after an edit.

use prost::encoding::{encode_varint, encoded_len_varint};

use super::{Body, Header, WireBatch};

/// Key of a length-delimited field 1 or 2 (the container fields, one byte each).
fn key(field: u32) -> u8 {
    ((field << 3) | 2) as u8
}

/// Bytes a length-delimited field with `len` bytes of value takes.
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn put_field(out: &mut Vec<u8>, field: u32, len: usize) {
    out.push(key(field));
    encode_varint(len as u64, out);
}

impl WireBatch {
    fn body_len(&self, body: &Body) -> usize {
        match body {
            Body::Range(a, b) => (b - a) as usize,
            Body::Owned(v) => v.len(),
        }
    }

    fn header_len(&self, h: &Header) -> usize {
        h.msg.as_ref().map_or(0, |m| field_len(self.body_len(m)))
            + h.rest.iter().map(|(a, b)| (b - a) as usize).sum::<usize>()
    }

    fn put_header(&self, out: &mut Vec<u8>, h: &Header) {
        if let Some(m) = &h.msg {
            let bytes = self.bytes(m);
            put_field(out, 1, bytes.len());
            out.extend_from_slice(bytes);
        }
        for &(a, b) in &h.rest {
            out.extend_from_slice(&self.buf[a as usize..b as usize]);
        }
    }

    /// The request as it stands; with `part = Some((parts, p))` only the items
    /// `i` with `parts[i] == p`, and only the containers that hold some of them.
    pub(super) fn encode(&self, part: Option<(&[usize], usize)>) -> Vec<u8> {
        let wanted = |it: usize| part.is_none_or(|(parts, p)| parts.get(it) == Some(&p));
        let mut out = Vec::with_capacity(self.buf.len());
        // Items and scopes are in request order, so each container's children
        // follow one another: walk them with two cursors.
        let (mut sc, mut it) = (0usize, 0usize);
        let mut scope_lens: Vec<(usize, usize, usize)> = Vec::new();
        for (r, resource) in self.resources.iter().enumerate() {
            scope_lens.clear();
            let mut resource_len = self.header_len(resource);
            while sc < self.scopes.len() && self.index.scopes[sc][0] as usize == r {
                let first = it;
                let mut len = self.header_len(&self.scopes[sc]);
                let mut any = false;
                while it < self.items.len() && self.index.items[it][0] as usize == sc {
                    if wanted(it) {
                        len += field_len(self.body_len(&self.items[it]));
                        any = true;
                    }
                    it += 1;
                }
                if any || part.is_none() {
                    resource_len += field_len(len);
                    scope_lens.push((sc, first, len));
                }
                sc += 1;
            }
            if scope_lens.is_empty() && part.is_some() {
                continue;
            }
            put_field(&mut out, 1, resource_len);
            self.put_header(&mut out, resource);
            for &(s, first, len) in &scope_lens {
                put_field(&mut out, 2, len);
                self.put_header(&mut out, &self.scopes[s]);
                let mut i = first;
                while i < self.items.len() && self.index.items[i][0] as usize == s {
                    if wanted(i) {
                        let bytes = self.bytes(&self.items[i]);
                        put_field(&mut out, 2, bytes.len());
                        out.extend_from_slice(bytes);
                    }
                    i += 1;
                }
            }
        }
        out
    }
}
