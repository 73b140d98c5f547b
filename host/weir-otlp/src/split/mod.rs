//! Splits an encoded OTLP request (or several concatenated, as a batch is) into
//! requests of at most `max_bytes` each, without decoding it.
//!
//! The cut goes by ResourceX, then ScopeX, then item (span, log record, or
//! whole Metric message), keeping item order. Each piece that carries part of a
//! resource or scope gets that resource's or scope's other fields (the
//! Resource, the InstrumentationScope, schema_url, unknown fields) copied byte
//! for byte; fields of the request itself other than its resources go into
//! every piece. Envelope fields are written before the repeated children, which
//! decodes the same as any other order.
//!
//! Metrics are cut between whole Metric messages; a Metric too large for a
//! piece on its own is cut between its data points, each part a Metric with the
//! same name, description, unit, metadata and aggregation fields, as the
//! Collector's batch splitting does.

use bytes::Bytes;
use weir_pipeline::{Batch, RequestSplitter, Signal, SplitError};

use crate::wire::cursor::{Cursor, LEN};
use crate::wire::fault::Res;

mod metric;
mod pack;
#[cfg(test)]
mod tests;

/// The [`RequestSplitter`] for OTLP protobuf requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct OtlpSplitter;

impl RequestSplitter for OtlpSplitter {
    fn split(&self, batch: &Batch, max_bytes: usize) -> Result<Vec<Batch>, SplitError> {
        if batch.payload.len() <= max_bytes {
            return Ok(vec![batch.clone()]);
        }
        let request = parse(batch.signal, &batch.payload)
            .map_err(|f| SplitError::Malformed(f.into_error().to_string()))?;
        pack::pack(batch.signal, &request, max_bytes).map(|pieces| {
            pieces
                .into_iter()
                .map(|(payload, items)| Batch::new(batch.signal, Bytes::from(payload), items))
                .collect()
        })
    }
}

/// A message's fields other than its repeated children, as they are on the wire.
#[derive(Debug, Default)]
pub(crate) struct Envelope<'a> {
    fields: Vec<&'a [u8]>,
    len: usize,
}

impl<'a> Envelope<'a> {
    fn push(&mut self, field: &'a [u8]) {
        self.fields.push(field);
        self.len += field.len();
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        for f in &self.fields {
            out.extend_from_slice(f);
        }
    }
}

pub(crate) struct Request<'a> {
    envelope: Envelope<'a>,
    resources: Vec<Resource<'a>>,
}

pub(crate) struct Resource<'a> {
    envelope: Envelope<'a>,
    scopes: Vec<Scope<'a>>,
}

pub(crate) struct Scope<'a> {
    envelope: Envelope<'a>,
    items: Vec<Item<'a>>,
}

pub(crate) struct Item<'a> {
    /// The whole field: key, length and message.
    field: &'a [u8],
    /// The message alone.
    body: &'a [u8],
    /// What it counts for: 1, or a metric's data points.
    count: usize,
}

/// Reads the fields of `buf` (at `base` in the request), handing each
/// length-delimited field `child` to `on` and collecting the others.
fn children<'a>(
    buf: &'a [u8],
    base: usize,
    child: u32,
    mut on: impl FnMut(&'a [u8], &'a [u8], usize) -> Res<()>,
) -> Res<Envelope<'a>> {
    let mut c = Cursor::new(buf, base);
    let mut envelope = Envelope::default();
    loop {
        let start = c.offset() - base;
        let Some((n, wt)) = c.key()? else {
            return Ok(envelope);
        };
        if n == child && wt == LEN {
            let (body, at) = c.len(wt, "")?;
            on(&buf[start..c.offset() - base], body, at)?;
        } else {
            c.skip(wt)?;
            envelope.push(&buf[start..c.offset() - base]);
        }
    }
}

fn parse(signal: Signal, payload: &[u8]) -> Res<Request<'_>> {
    let mut resources = Vec::new();
    let envelope = children(payload, 0, 1, |_, resource, at| {
        let mut scopes = Vec::new();
        let envelope = children(resource, at, 2, |_, scope, at| {
            let mut items = Vec::new();
            let envelope = children(scope, at, 2, |field, body, at| {
                let count = match signal {
                    Signal::Metrics => crate::wire::metrics::metric(body, at)?,
                    Signal::Traces | Signal::Logs => 1,
                };
                items.push(Item { field, body, count });
                Ok(())
            })?;
            scopes.push(Scope { envelope, items });
            Ok(())
        })?;
        resources.push(Resource { envelope, scopes });
        Ok(())
    })?;
    Ok(Request { envelope, resources })
}

/// The noun of one item, for errors.
fn noun(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "span",
        Signal::Logs => "log record",
        Signal::Metrics => "metric",
    }
}
