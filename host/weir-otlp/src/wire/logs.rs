//! LogRecord (opentelemetry/proto/logs/v1/logs.proto).

use super::common::{any_value, attribute};
use super::cursor::{Cursor, I32, I64, VARINT};
use super::envelope::{Schema, id};
use super::fault::{Res, Seg, Within};

pub(crate) struct Logs;

impl Schema for Logs {
    const RESOURCES: &'static str = "resource_logs";
    const SCOPES: &'static str = "scope_logs";
    const ITEMS: &'static str = "log_records";

    fn item(b: &[u8], at: usize) -> Res<usize> {
        log_record(b, at).map(|()| 1)
    }
}

/// LogRecord, at message level 3. Its ids are optional.
fn log_record(b: &[u8], at: usize) -> Res<()> {
    let mut c = Cursor::new(b, at);
    let mut attrs = 0;
    while let Some((n, wt)) = c.key()? {
        match n {
            1 => c.scalar(wt, I64, "time_unix_nano")?,
            2 => c.scalar(wt, VARINT, "severity_number")?,
            3 => c.string(wt, "severity_text")?,
            5 => {
                let (v, at) = c.len(wt, "body")?;
                any_value(v, at, 4, false).within(Seg::Field("body"))?;
            }
            6 => {
                let (kv, at) = c.len(wt, "attributes")?;
                attribute(kv, at, 4, "attributes", attrs)?;
                attrs += 1;
            }
            7 => c.scalar(wt, VARINT, "dropped_attributes_count")?,
            8 => c.scalar(wt, I32, "flags")?,
            9 => {
                let (v, at) = c.len(wt, "trace_id")?;
                id(v, at, &[0, 16], "trace_id")?;
            }
            10 => {
                let (v, at) = c.len(wt, "span_id")?;
                id(v, at, &[0, 8], "span_id")?;
            }
            11 => c.scalar(wt, I64, "observed_time_unix_nano")?,
            12 => c.string(wt, "event_name")?,
            _ => c.skip(wt)?,
        }
    }
    Ok(())
}
