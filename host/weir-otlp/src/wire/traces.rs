//! Span and what it holds (opentelemetry/proto/trace/v1/trace.proto).

use super::common::attribute;
use super::cursor::{Cursor, I32, I64, VARINT};
use super::envelope::{Schema, id, required};
use super::fault::{Res, Seg, Within};

pub(crate) struct Traces;

impl Schema for Traces {
    const RESOURCES: &'static str = "resource_spans";
    const SCOPES: &'static str = "scope_spans";
    const ITEMS: &'static str = "spans";

    fn item(b: &[u8], at: usize) -> Res<usize> {
        span(b, at).map(|()| 1)
    }
}

/// Span, at message level 3. Its trace_id and span_id are required.
fn span(b: &[u8], at: usize) -> Res<()> {
    let mut c = Cursor::new(b, at);
    let (mut trace_id, mut span_id) = (false, false);
    let (mut attrs, mut events, mut links) = (0, 0, 0);
    while let Some((n, wt)) = c.key()? {
        match n {
            1 => {
                let (v, at) = c.len(wt, "trace_id")?;
                id(v, at, &[16], "trace_id")?;
                trace_id = true;
            }
            2 => {
                let (v, at) = c.len(wt, "span_id")?;
                id(v, at, &[8], "span_id")?;
                span_id = true;
            }
            3 => c.string(wt, "trace_state")?,
            4 => {
                let (v, at) = c.len(wt, "parent_span_id")?;
                id(v, at, &[0, 8], "parent_span_id")?;
            }
            5 => c.string(wt, "name")?,
            6 => c.scalar(wt, VARINT, "kind")?,
            7 => c.scalar(wt, I64, "start_time_unix_nano")?,
            8 => c.scalar(wt, I64, "end_time_unix_nano")?,
            9 => {
                let (kv, at) = c.len(wt, "attributes")?;
                attribute(kv, at, 4, "attributes", attrs)?;
                attrs += 1;
            }
            10 => c.scalar(wt, VARINT, "dropped_attributes_count")?,
            11 => {
                let (e, at) = c.len(wt, "events")?;
                event(e, at).within(Seg::Index("events", events))?;
                events += 1;
            }
            12 => c.scalar(wt, VARINT, "dropped_events_count")?,
            13 => {
                let (l, at) = c.len(wt, "links")?;
                link(l, at).within(Seg::Index("links", links))?;
                links += 1;
            }
            14 => c.scalar(wt, VARINT, "dropped_links_count")?,
            15 => {
                let (s, at) = c.len(wt, "status")?;
                status(s, at).within(Seg::Field("status"))?;
            }
            16 => c.scalar(wt, I32, "flags")?,
            _ => c.skip(wt)?,
        }
    }
    required(trace_id, at, &[16], "trace_id")?;
    required(span_id, at, &[8], "span_id")
}

fn event(b: &[u8], at: usize) -> Res<()> {
    let mut c = Cursor::new(b, at);
    let mut attrs = 0;
    while let Some((n, wt)) = c.key()? {
        match n {
            1 => c.scalar(wt, I64, "time_unix_nano")?,
            2 => c.string(wt, "name")?,
            3 => {
                let (kv, at) = c.len(wt, "attributes")?;
                attribute(kv, at, 5, "attributes", attrs)?;
                attrs += 1;
            }
            4 => c.scalar(wt, VARINT, "dropped_attributes_count")?,
            _ => c.skip(wt)?,
        }
    }
    Ok(())
}

/// Link: its ids may be empty (decoders accept that; SDKs may record links
/// without a valid span context when they carry attributes).
fn link(b: &[u8], at: usize) -> Res<()> {
    let mut c = Cursor::new(b, at);
    let mut attrs = 0;
    while let Some((n, wt)) = c.key()? {
        match n {
            1 => {
                let (v, at) = c.len(wt, "trace_id")?;
                id(v, at, &[0, 16], "trace_id")?;
            }
            2 => {
                let (v, at) = c.len(wt, "span_id")?;
                id(v, at, &[0, 8], "span_id")?;
            }
            3 => c.string(wt, "trace_state")?,
            4 => {
                let (kv, at) = c.len(wt, "attributes")?;
                attribute(kv, at, 5, "attributes", attrs)?;
                attrs += 1;
            }
            5 => c.scalar(wt, VARINT, "dropped_attributes_count")?,
            6 => c.scalar(wt, I32, "flags")?,
            _ => c.skip(wt)?,
        }
    }
    Ok(())
}

fn status(b: &[u8], at: usize) -> Res<()> {
    let mut c = Cursor::new(b, at);
    while let Some((n, wt)) = c.key()? {
        match n {
            2 => c.string(wt, "message")?,
            3 => c.scalar(wt, VARINT, "code")?,
            _ => c.skip(wt)?,
        }
    }
    Ok(())
}
