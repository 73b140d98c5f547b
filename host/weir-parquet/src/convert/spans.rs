//! An encoded `ExportTraceServiceRequest` → one `spans` record batch
//! (schema::spans), read straight off the wire.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, FixedSizeBinaryBuilder, Int64Builder, StringBuilder, TimestampNanosecondBuilder,
    UInt32Builder,
};
use arrow_array::{ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_buffer::OffsetBuffer;
use arrow_schema::ArrowError;
use opentelemetry_proto::tonic::trace::v1::{span, status};

use super::columns::{
    Context, ContextColumns, MapColumn, ResourceParts, ScopeParts, nanos, offset, timestamps,
};
use super::span_ref::{LinkRef, SpanRef};
use super::wire::{Field, Reader, WireError, text};
use super::{ConvertError, Converted, Rejected};
use crate::schema::{self, SPAN_ID_LEN, TRACE_ID_LEN};

/// The proto enum names, as the Collector's ClickHouse exporter writes them.
pub fn kind_name(kind: i32) -> Option<&'static str> {
    Some(match span::SpanKind::try_from(kind).ok()? {
        span::SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
        span::SpanKind::Internal => "SPAN_KIND_INTERNAL",
        span::SpanKind::Server => "SPAN_KIND_SERVER",
        span::SpanKind::Client => "SPAN_KIND_CLIENT",
        span::SpanKind::Producer => "SPAN_KIND_PRODUCER",
        span::SpanKind::Consumer => "SPAN_KIND_CONSUMER",
    })
}

pub fn status_name(code: i32) -> Option<&'static str> {
    Some(match status::StatusCode::try_from(code).ok()? {
        status::StatusCode::Unset => "STATUS_CODE_UNSET",
        status::StatusCode::Ok => "STATUS_CODE_OK",
        status::StatusCode::Error => "STATUS_CODE_ERROR",
    })
}

struct Events {
    offsets: Vec<i32>,
    time: TimestampNanosecondBuilder,
    name: StringBuilder,
    attributes: MapColumn,
    dropped: UInt32Builder,
}

impl Events {
    fn new(rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Events {
            offsets,
            time: timestamps(0),
            name: StringBuilder::new(),
            attributes: MapColumn::with_capacity(0, 0),
            dropped: UInt32Builder::new(),
        }
    }

    fn push(&mut self, events: &[&[u8]]) -> Result<(), WireError> {
        let mut kvs: Vec<&[u8]> = Vec::new();
        for e in events {
            let (mut time, mut name, mut dropped) = (0, "", 0);
            kvs.clear();
            for f in Reader::new(e) {
                match f? {
                    (1, v) => time = v.fixed64(),
                    (2, v) => name = text(v.bytes())?,
                    (3, Field::Bytes(kv)) => kvs.push(kv),
                    (4, v) => dropped = v.varint() as u32,
                    _ => {}
                }
            }
            self.time.append_value(nanos(time));
            self.name.append_value(name);
            self.attributes.row(&kvs)?;
            self.dropped.append_value(dropped);
        }
        self.offsets.push(offset(self.name.len()));
        Ok(())
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let values = StructArray::try_new(
            schema::event_fields(),
            vec![
                Arc::new(self.time.finish()),
                Arc::new(self.name.finish()),
                self.attributes.finish()?,
                Arc::new(self.dropped.finish()),
            ],
            None,
        )?;
        let offsets = OffsetBuffer::new(std::mem::take(&mut self.offsets).into());
        Ok(Arc::new(ListArray::try_new(
            schema::list_item(schema::event_fields()),
            offsets,
            Arc::new(values),
            None,
        )?))
    }
}

struct Links {
    offsets: Vec<i32>,
    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    attributes: MapColumn,
    dropped: UInt32Builder,
}

impl Links {
    fn new(rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Links {
            offsets,
            trace_id: FixedSizeBinaryBuilder::new(TRACE_ID_LEN),
            span_id: FixedSizeBinaryBuilder::new(SPAN_ID_LEN),
            trace_state: StringBuilder::new(),
            flags: UInt32Builder::new(),
            attributes: MapColumn::with_capacity(0, 0),
            dropped: UInt32Builder::new(),
        }
    }

    fn push(&mut self, links: &[LinkRef<'_>]) -> Result<(), ConvertError> {
        for l in links {
            self.trace_id.append_value(l.trace_id)?;
            self.span_id.append_value(l.span_id)?;
            self.trace_state.append_value(l.trace_state);
            self.flags.append_value(l.flags);
            self.attributes.row(&l.attributes)?;
            self.dropped.append_value(l.dropped_attributes);
        }
        self.offsets.push(offset(self.flags.len()));
        Ok(())
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let values = StructArray::try_new(
            schema::link_fields(),
            vec![
                Arc::new(self.trace_id.finish()),
                Arc::new(self.span_id.finish()),
                Arc::new(self.trace_state.finish()),
                Arc::new(self.flags.finish()),
                self.attributes.finish()?,
                Arc::new(self.dropped.finish()),
            ],
            None,
        )?;
        let offsets = OffsetBuffer::new(std::mem::take(&mut self.offsets).into());
        Ok(Arc::new(ListArray::try_new(
            schema::list_item(schema::link_fields()),
            offsets,
            Arc::new(values),
            None,
        )?))
    }
}

struct SpanColumns {
    start: TimestampNanosecondBuilder,
    duration: Int64Builder,
    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    parent_span_id: FixedSizeBinaryBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    name: StringBuilder,
    kind: StringBuilder,
    status_code: StringBuilder,
    status_message: StringBuilder,
    attributes: MapColumn,
    events: Events,
    links: Links,
    dropped_attributes: UInt32Builder,
    dropped_events: UInt32Builder,
    dropped_links: UInt32Builder,
    context: ContextColumns,
}

impl SpanColumns {
    fn with_capacity(n: usize) -> Self {
        SpanColumns {
            start: timestamps(n),
            duration: Int64Builder::with_capacity(n),
            trace_id: FixedSizeBinaryBuilder::with_capacity(n, TRACE_ID_LEN),
            span_id: FixedSizeBinaryBuilder::with_capacity(n, SPAN_ID_LEN),
            parent_span_id: FixedSizeBinaryBuilder::with_capacity(n, SPAN_ID_LEN),
            trace_state: StringBuilder::with_capacity(n, 0),
            flags: UInt32Builder::with_capacity(n),
            name: StringBuilder::with_capacity(n, n * 16),
            kind: StringBuilder::with_capacity(n, n * 18),
            status_code: StringBuilder::with_capacity(n, n * 17),
            status_message: StringBuilder::with_capacity(n, 0),
            attributes: MapColumn::with_capacity(n, n * 10),
            events: Events::new(n),
            links: Links::new(n),
            dropped_attributes: UInt32Builder::with_capacity(n),
            dropped_events: UInt32Builder::with_capacity(n),
            dropped_links: UInt32Builder::with_capacity(n),
            context: ContextColumns::with_capacity(n),
        }
    }

    /// Appends one span whose ids were checked by [`SpanRef::invalid_ids`].
    fn push(&mut self, s: &SpanRef<'_>) -> Result<(), ConvertError> {
        let start = nanos(s.start);
        let end = nanos(s.end);
        self.start.append_value(start);
        self.duration.append_value(end.saturating_sub(start));
        self.trace_id.append_value(s.trace_id)?;
        self.span_id.append_value(s.span_id)?;
        if s.parent_span_id.is_empty() {
            self.parent_span_id.append_null();
        } else {
            self.parent_span_id.append_value(s.parent_span_id)?;
        }
        self.trace_state.append_value(s.trace_state);
        self.flags.append_value(s.flags);
        self.name.append_value(s.name);
        match kind_name(s.kind) {
            Some(k) => self.kind.append_value(k),
            None => self.kind.append_value(s.kind.to_string()),
        }
        match status_name(s.status_code) {
            Some(c) => self.status_code.append_value(c),
            None => self.status_code.append_value(s.status_code.to_string()),
        }
        self.status_message.append_value(s.status_message);
        self.attributes.row(&s.attributes)?;
        self.events.push(&s.events)?;
        self.links.push(&s.links)?;
        self.dropped_attributes.append_value(s.dropped_attributes);
        self.dropped_events.append_value(s.dropped_events);
        self.dropped_links.append_value(s.dropped_links);
        Ok(())
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.start.finish()),
            Arc::new(self.duration.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent_span_id.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
            self.attributes.finish()?,
            self.events.finish()?,
            self.links.finish()?,
            Arc::new(self.dropped_attributes.finish()),
            Arc::new(self.dropped_events.finish()),
            Arc::new(self.dropped_links.finish()),
        ];
        self.context.finish(&mut columns)?;
        RecordBatch::try_new(schema::spans(), columns)
    }
}

/// One span located on the wire, with its sort key.
struct Located<'a> {
    /// Rank of the span's resource: by service name (missing last), then the
    /// other resource attributes.
    resource: u32,
    trace_id: &'a [u8],
    start: u64,
    context: u32,
    span: &'a [u8],
}

/// The spans of an encoded request located and sorted by (service, resource,
/// trace id, start time), not yet converted. Neighbouring rows then share their
/// service and process's resource columns (in runs), a trace's ids and nearby
/// start times, which is what Parquet's encodings and zstd compress best. The
/// resource comes before the trace id because interleaving the pods of one
/// service breaks the resource columns' runs, which costs more than keeping a
/// trace's spans from different pods of one service apart saves
/// (docs/benchmarks.md, section 3).
pub struct SortedSpans<'a> {
    contexts: Vec<Context>,
    rows: Vec<Located<'a>>,
}

/// The trace id and start time of an encoded span. Encoders write fields in
/// number order, so this usually stops at field 7, before the attributes.
fn sort_key(span: &[u8]) -> Result<(&[u8], u64), WireError> {
    let (mut trace_id, mut start): (Option<&[u8]>, Option<u64>) = (None, None);
    for f in Reader::new(span) {
        match f? {
            (1, v) => trace_id = Some(v.bytes()),
            (7, v) => start = Some(v.fixed64()),
            _ => {}
        }
        if let (Some(t), Some(s)) = (trace_id, start) {
            return Ok((t, s));
        }
    }
    Ok((trace_id.unwrap_or_default(), start.unwrap_or_default()))
}

/// Ranks of `resources` in sort order; equal resources get equal ranks.
fn resource_ranks(resources: &[Context]) -> Vec<u32> {
    let mut order: Vec<usize> = (0..resources.len()).collect();
    order.sort_by(|a, b| resources[*a].resource_order(&resources[*b]));
    let mut ranks = vec![0u32; resources.len()];
    let mut rank = 0u32;
    for (i, pos) in order.iter().enumerate() {
        if i > 0 && resources[order[i - 1]].resource_order(&resources[*pos]).is_ne() {
            rank += 1;
        }
        ranks[*pos] = rank;
    }
    ranks
}

impl<'a> SortedSpans<'a> {
    /// Locates every span of `payload` and sorts them.
    pub fn scan(payload: &'a [u8], items: usize) -> Result<Self, ConvertError> {
        let mut resources = Vec::new();
        let mut contexts = Vec::new();
        let mut rows = Vec::with_capacity(items);
        for f in Reader::new(payload) {
            let (1, Field::Bytes(rs)) = f? else { continue };
            let rs = ResourceParts::parse(rs)?;
            let resource = Context::resource(rs.resource, rs.schema_url)?;
            let resource_index = u32::try_from(resources.len()).unwrap_or(u32::MAX);
            for ss in rs.scopes {
                let ss = ScopeParts::parse(ss)?;
                let mut context = resource.clone();
                context.set_scope(ss.scope, ss.schema_url)?;
                let index = u32::try_from(contexts.len()).unwrap_or(u32::MAX);
                contexts.push(context);
                for span in ss.items {
                    let (trace_id, start) = sort_key(span)?;
                    rows.push(Located {
                        resource: resource_index,
                        trace_id,
                        start,
                        context: index,
                        span,
                    });
                }
            }
            resources.push(resource);
        }
        let ranks = resource_ranks(&resources);
        for row in &mut rows {
            row.resource = ranks.get(row.resource as usize).copied().unwrap_or(u32::MAX);
        }
        // Stable: spans with equal keys keep the order they came in.
        rows.sort_by(|a, b| (a.resource, a.trace_id, a.start).cmp(&(b.resource, b.trace_id, b.start)));
        Ok(SortedSpans { contexts, rows })
    }

    /// How many spans were located (valid or not).
    pub fn count(&self) -> usize {
        self.rows.len()
    }

    /// Converts the sorted spans `range` with valid ids; the others are counted
    /// in the result's `rejected`.
    pub fn convert(&self, range: std::ops::Range<usize>) -> Result<Converted, ConvertError> {
        let rows = self.rows.get(range).unwrap_or_default();
        let mut cols = SpanColumns::with_capacity(rows.len());
        let mut rejected = Rejected::default();
        let mut span = SpanRef::default();
        for row in rows {
            span.read(row.span)?;
            if let Some(why) = span.invalid_ids() {
                rejected.add(why);
                continue;
            }
            cols.push(&span)?;
            if let Some(context) = self.contexts.get(row.context as usize) {
                cols.context.push(context);
            }
        }
        Ok(Converted {
            batch: cols.finish()?,
            rejected,
        })
    }
}

/// Converts every span of an encoded request with valid ids, sorted by
/// (service, trace id, start time); the others are counted in the result's
/// `rejected`. `items` sizes the builders.
pub fn convert(payload: &[u8], items: usize) -> Result<Converted, ConvertError> {
    let sorted = SortedSpans::scan(payload, items)?;
    sorted.convert(0..sorted.count())
}
