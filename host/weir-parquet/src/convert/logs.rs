//! An encoded `ExportLogsServiceRequest` → one `logs` record batch
//! (schema::logs), read straight off the wire.

use std::sync::Arc;

use arrow_array::builder::{
    FixedSizeBinaryBuilder, Int32Builder, StringBuilder, TimestampNanosecondBuilder, UInt32Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::ArrowError;

use super::columns::{
    Context, ContextColumns, MapColumn, ResourceParts, ScopeParts, nanos, push_any, timestamps,
};
use super::wire::{Field, Reader, WireError, text};
use super::{ConvertError, Converted, Rejected};
use crate::schema::{self, SPAN_ID_LEN, TRACE_ID_LEN};

/// One encoded log record, its fields located but not copied.
#[derive(Default)]
struct LogRef<'a> {
    time: u64,
    observed: u64,
    severity_number: i32,
    severity_text: &'a str,
    body: Option<&'a [u8]>,
    attributes: Vec<&'a [u8]>,
    dropped_attributes: u32,
    flags: u32,
    trace_id: &'a [u8],
    span_id: &'a [u8],
    event_name: &'a str,
}

impl<'a> LogRef<'a> {
    fn read(&mut self, b: &'a [u8]) -> Result<(), WireError> {
        let mut attributes = std::mem::take(&mut self.attributes);
        attributes.clear();
        *self = LogRef {
            attributes,
            ..LogRef::default()
        };
        for f in Reader::new(b) {
            match f? {
                (1, v) => self.time = v.fixed64(),
                (11, v) => self.observed = v.fixed64(),
                (2, v) => self.severity_number = v.varint() as i32,
                (3, v) => self.severity_text = text(v.bytes())?,
                (5, Field::Bytes(any)) => self.body = Some(any),
                (6, Field::Bytes(kv)) => self.attributes.push(kv),
                (7, v) => self.dropped_attributes = v.varint() as u32,
                (8, v) => self.flags = v.fixed32(),
                (9, v) => self.trace_id = v.bytes(),
                (10, v) => self.span_id = v.bytes(),
                (12, v) => self.event_name = text(v.bytes())?,
                _ => {}
            }
        }
        Ok(())
    }

    fn invalid_ids(&self) -> Option<&'static str> {
        if !self.trace_id.is_empty() && self.trace_id.len() != TRACE_ID_LEN as usize {
            return Some("trace_id is neither empty nor 16 bytes");
        }
        if !self.span_id.is_empty() && self.span_id.len() != SPAN_ID_LEN as usize {
            return Some("span_id is neither empty nor 8 bytes");
        }
        None
    }
}

/// Appends an id, or null when it is empty (a log record outside any span).
fn optional_id(b: &mut FixedSizeBinaryBuilder, id: &[u8]) -> Result<(), ArrowError> {
    if id.is_empty() {
        b.append_null();
        Ok(())
    } else {
        b.append_value(id)
    }
}

/// Appends a timestamp, or null for 0 (OTLP's "unknown").
fn optional_time(b: &mut TimestampNanosecondBuilder, t: u64) {
    if t == 0 {
        b.append_null();
    } else {
        b.append_value(nanos(t));
    }
}

struct LogColumns {
    time: TimestampNanosecondBuilder,
    observed: TimestampNanosecondBuilder,
    severity_number: Int32Builder,
    severity_text: StringBuilder,
    body: StringBuilder,
    event_name: StringBuilder,
    attributes: MapColumn,
    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    flags: UInt32Builder,
    dropped_attributes: UInt32Builder,
    context: ContextColumns,
}

impl LogColumns {
    fn with_capacity(n: usize) -> Self {
        LogColumns {
            time: timestamps(n),
            observed: timestamps(n),
            severity_number: Int32Builder::with_capacity(n),
            severity_text: StringBuilder::with_capacity(n, n * 5),
            body: StringBuilder::with_capacity(n, n * 64),
            event_name: StringBuilder::with_capacity(n, 0),
            attributes: MapColumn::with_capacity(n, n * 8),
            trace_id: FixedSizeBinaryBuilder::with_capacity(n, TRACE_ID_LEN),
            span_id: FixedSizeBinaryBuilder::with_capacity(n, SPAN_ID_LEN),
            flags: UInt32Builder::with_capacity(n),
            dropped_attributes: UInt32Builder::with_capacity(n),
            context: ContextColumns::with_capacity(n),
        }
    }

    fn push(&mut self, r: &LogRef<'_>) -> Result<(), ConvertError> {
        optional_time(&mut self.time, r.time);
        optional_time(&mut self.observed, r.observed);
        self.severity_number.append_value(r.severity_number);
        self.severity_text.append_value(r.severity_text);
        push_any(&mut self.body, r.body)?;
        self.event_name.append_value(r.event_name);
        self.attributes.row(&r.attributes)?;
        optional_id(&mut self.trace_id, r.trace_id)?;
        optional_id(&mut self.span_id, r.span_id)?;
        self.flags.append_value(r.flags);
        self.dropped_attributes.append_value(r.dropped_attributes);
        Ok(())
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.observed.finish()),
            Arc::new(self.severity_number.finish()),
            Arc::new(self.severity_text.finish()),
            Arc::new(self.body.finish()),
            Arc::new(self.event_name.finish()),
            self.attributes.finish()?,
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.dropped_attributes.finish()),
        ];
        self.context.finish(&mut columns)?;
        RecordBatch::try_new(schema::logs(), columns)
    }
}

/// Converts every log record of an encoded request with valid ids; the others
/// are counted in the result's `rejected`. `items` sizes the builders.
pub fn convert(payload: &[u8], items: usize) -> Result<Converted, ConvertError> {
    let mut cols = LogColumns::with_capacity(items);
    let mut rejected = Rejected::default();
    let mut record = LogRef::default();
    for f in Reader::new(payload) {
        let (1, Field::Bytes(rl)) = f? else { continue };
        let rl = ResourceParts::parse(rl)?;
        let mut context = Context::resource(rl.resource, rl.schema_url)?;
        for sl in rl.scopes {
            let sl = ScopeParts::parse(sl)?;
            context.set_scope(sl.scope, sl.schema_url)?;
            for r in sl.items {
                record.read(r)?;
                if let Some(why) = record.invalid_ids() {
                    rejected.add(why);
                    continue;
                }
                cols.push(&record)?;
                cols.context.push(&context);
            }
        }
    }
    Ok(Converted {
        batch: cols.finish()?,
        rejected,
    })
}
