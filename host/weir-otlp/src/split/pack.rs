//! Packs the parsed request's items, in order, into pieces of at most
//! `max_bytes`, each re-framed with the envelopes of what it carries.

use std::borrow::Cow;

use weir_pipeline::{Signal, SplitError};

use super::{Request, metric, noun};
use crate::wire::cursor::{put_varint, varint_len};

/// Encoded length of a length-delimited field with a one-byte key (fields 1-15)
/// holding `n` bytes.
pub(crate) fn framed(n: usize) -> usize {
    1 + varint_len(n as u64) + n
}

/// Sizes of the piece being filled: enough to know its encoded length after a
/// hypothetical addition without building it.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// The request envelope and the resources already closed.
    closed: usize,
    /// The open resource (index, content length without its open scope).
    resource: Option<(usize, usize)>,
    /// The open scope (index, content length).
    scope: Option<(usize, usize)>,
}

impl Sizes {
    fn fresh(request_envelope: usize) -> Self {
        Sizes {
            closed: request_envelope,
            resource: None,
            scope: None,
        }
    }

    fn total(&self) -> usize {
        let open_scope = self.scope.map_or(0, |(_, len)| framed(len));
        self.closed + self.resource.map_or(0, |(_, len)| framed(len + open_scope))
    }

    fn close_scope(&mut self) {
        if let (Some((_, len)), Some(r)) = (self.scope.take(), self.resource.as_mut()) {
            r.1 += framed(len);
        }
    }

    fn close_resource(&mut self) {
        self.close_scope();
        if let Some((_, len)) = self.resource.take() {
            self.closed += framed(len);
        }
    }

    /// Opens resource `r` and scope `s` (with their envelopes' lengths) unless
    /// they are the open ones.
    fn enter(&mut self, r: (usize, usize), s: Option<(usize, usize)>) {
        if self.resource.map(|x| x.0) != Some(r.0) {
            self.close_resource();
            self.resource = Some(r);
        }
        if let Some(s) = s
            && self.scope.map(|x| x.0) != Some(s.0)
        {
            self.close_scope();
            self.scope = Some(s);
        }
    }

    fn add(&mut self, len: usize) {
        if let Some(s) = self.scope.as_mut() {
            s.1 += len;
        }
    }
}

/// What a piece holds, to write it out.
struct PartResource<'a> {
    index: usize,
    scopes: Vec<PartScope<'a>>,
}

struct PartScope<'a> {
    index: usize,
    items: Vec<Cow<'a, [u8]>>,
}

struct Packer<'r, 'a> {
    signal: Signal,
    request: &'r Request<'a>,
    max: usize,
    sizes: Sizes,
    parts: Vec<PartResource<'a>>,
    items: usize,
    done: Vec<Piece>,
}

/// Where an item goes: resource and scope indexes in the request.
#[derive(Clone, Copy)]
struct At {
    resource: usize,
    scope: Option<usize>,
}

impl<'a> Packer<'_, 'a> {
    fn envelope_lens(&self, at: At) -> ((usize, usize), Option<(usize, usize)>) {
        let r = &self.request.resources[at.resource];
        let s = at.scope.map(|s| (s, r.scopes[s].envelope.len));
        ((at.resource, r.envelope.len), s)
    }

    /// The piece's length with `len` more bytes of item at `at`, starting from `sizes`.
    fn size_with(&self, mut sizes: Sizes, at: At, len: usize) -> (Sizes, usize) {
        let (r, s) = self.envelope_lens(at);
        sizes.enter(r, s);
        sizes.add(len);
        (sizes, sizes.total())
    }

    /// The length of a piece holding only `len` bytes of item at `at`.
    fn alone(&self, at: At, len: usize) -> usize {
        self.size_with(Sizes::fresh(self.request.envelope.len), at, len).1
    }

    /// Adds an item (or, with `None`, an empty resource or scope) to the
    /// current piece, or to a new one if it does not fit. Returns false if it
    /// does not fit even alone.
    fn place(&mut self, at: At, item: Option<(Cow<'a, [u8]>, usize)>) -> bool {
        let len = item.as_ref().map_or(0, |(b, _)| b.len());
        let (mut sizes, mut total) = self.size_with(self.sizes, at, len);
        if total > self.max {
            if self.parts.is_empty() {
                return false;
            }
            self.flush();
            (sizes, total) = self.size_with(self.sizes, at, len);
            if total > self.max {
                return false;
            }
        }
        self.sizes = sizes;
        if self.parts.last().map(|p| p.index) != Some(at.resource) {
            self.parts.push(PartResource {
                index: at.resource,
                scopes: Vec::new(),
            });
        }
        let Some(part) = self.parts.last_mut() else {
            return true;
        };
        if let Some(s) = at.scope {
            if part.scopes.last().map(|p| p.index) != Some(s) {
                part.scopes.push(PartScope {
                    index: s,
                    items: Vec::new(),
                });
            }
            if let (Some(scope), Some((bytes, count))) = (part.scopes.last_mut(), item) {
                scope.items.push(bytes);
                self.items += count;
            }
        }
        true
    }

    /// Writes the current piece out and starts an empty one.
    fn flush(&mut self) {
        let total = self.sizes.total();
        let mut out = Vec::with_capacity(total);
        self.request.envelope.write(&mut out);
        for part in self.parts.drain(..) {
            let resource = &self.request.resources[part.index];
            let scope_lens: Vec<usize> = part
                .scopes
                .iter()
                .map(|s| {
                    resource.scopes[s.index].envelope.len + s.items.iter().map(|i| i.len()).sum::<usize>()
                })
                .collect();
            let resource_len = resource.envelope.len + scope_lens.iter().map(|&l| framed(l)).sum::<usize>();
            field_header(&mut out, 1, resource_len);
            resource.envelope.write(&mut out);
            for (scope, len) in part.scopes.iter().zip(scope_lens) {
                field_header(&mut out, 2, len);
                resource.scopes[scope.index].envelope.write(&mut out);
                for item in &scope.items {
                    out.extend_from_slice(item);
                }
            }
        }
        debug_assert_eq!(out.len(), total, "the size bookkeeping matches the encoding");
        self.done.push((out, std::mem::take(&mut self.items)));
        self.sizes = Sizes::fresh(self.request.envelope.len);
    }
}

/// Key and length of a length-delimited field numbered 1-15.
pub(crate) fn field_header(out: &mut Vec<u8>, number: u8, len: usize) {
    out.push((number << 3) | 2);
    put_varint(out, len as u64);
}

/// An encoded request and its number of items.
pub(crate) type Piece = (Vec<u8>, usize);

pub(crate) fn pack(signal: Signal, request: &Request<'_>, max: usize) -> Result<Vec<Piece>, SplitError> {
    let mut p = Packer {
        signal,
        request,
        max,
        sizes: Sizes::fresh(request.envelope.len),
        parts: Vec::new(),
        items: 0,
        done: Vec::new(),
    };
    let too_large = |noun, bytes| SplitError::ItemTooLarge {
        noun,
        bytes,
        limit: max,
    };
    if request.resources.is_empty() {
        return Err(too_large("request without resources", request.envelope.len));
    }
    for (r, resource) in request.resources.iter().enumerate() {
        if resource.scopes.is_empty() {
            let at = At {
                resource: r,
                scope: None,
            };
            if !p.place(at, None) {
                return Err(too_large("resource", p.alone(at, 0)));
            }
        }
        for (s, scope) in resource.scopes.iter().enumerate() {
            let at = At {
                resource: r,
                scope: Some(s),
            };
            if scope.items.is_empty() && !p.place(at, None) {
                return Err(too_large("scope", p.alone(at, 0)));
            }
            for item in &scope.items {
                if p.place(at, Some((Cow::Borrowed(item.field), item.count))) {
                    continue;
                }
                if p.signal != Signal::Metrics {
                    return Err(too_large(noun(signal), p.alone(at, item.field.len())));
                }
                // A metric too large alone: cut it between its data points.
                let parts = metric::split(item.body, |len| p.alone(at, len) <= max)
                    .map_err(|(noun, len)| too_large(noun, p.alone(at, len)))?;
                for (bytes, count) in parts {
                    let len = bytes.len();
                    if !p.place(at, Some((Cow::Owned(bytes), count))) {
                        return Err(too_large("metric data point", p.alone(at, len)));
                    }
                }
            }
        }
    }
    if !p.parts.is_empty() {
        p.flush();
    }
    Ok(p.done)
}
