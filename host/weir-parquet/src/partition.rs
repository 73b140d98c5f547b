//! Hive-style partitions: `signal=traces/date=YYYY-MM-DD/hour=HH/` and, when
//! configured, `service=NAME/` below that. The date and hour are those of each
//! row's `Timestamp` in UTC (a span's start; a log record's time, or its observed
//! time when the time is unknown, or the time weir wrote it when both are), so a
//! partition filter agrees with a filter on `Timestamp`.

use std::fmt::Write as _;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{Array, PrimitiveArray, RecordBatch, UInt32Array};
use arrow_schema::ArrowError;
use weir_pipeline::Signal;

/// Hive's name for a missing partition value (read back as NULL by Spark and Hive).
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

const NANOS_PER_HOUR: i64 = 3_600_000_000_000;

/// The directory a row belongs in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    pub signal: Signal,
    /// Hours since the Unix epoch (UTC).
    pub hour: i64,
    /// `Some` only when partitioning by service; the inner `None` is a missing name.
    pub service: Option<Option<String>>,
}

impl PartitionKey {
    /// The relative directory, e.g. `signal=traces/date=2025-01-02/hour=03`.
    pub fn dir(&self) -> String {
        let (y, m, d) = civil_from_days(self.hour.div_euclid(24));
        let mut s = format!(
            "signal={}/date={y:04}-{m:02}-{d:02}/hour={:02}",
            self.signal,
            self.hour.rem_euclid(24)
        );
        if let Some(service) = &self.service {
            s.push_str("/service=");
            match service.as_deref() {
                Some(name) if !name.is_empty() => escape_into(&mut s, name),
                _ => s.push_str(NULL_PARTITION),
            }
        }
        s
    }
}

/// Percent-encodes every byte but `[A-Za-z0-9._-]`, as Hive and Spark escape
/// partition values (they decode them when reading).
fn escape_into(out: &mut String, value: &str) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian;
/// H. Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

/// The nanosecond timestamp that places row `i`: `Timestamp`, else (logs)
/// `ObservedTimestamp`, else `now`.
fn row_time(candidates: &[&PrimitiveArray<TimestampNanosecondType>], i: usize, now: i64) -> i64 {
    candidates
        .iter()
        .find(|ts| ts.is_valid(i))
        .map_or(now, |ts| ts.value(i))
}

/// Splits a converted batch by partition; most batches have a single one and
/// are returned as they are.
pub fn split(
    signal: Signal,
    batch: RecordBatch,
    by_service: bool,
    now_nanos: i64,
) -> Result<Vec<(PartitionKey, RecordBatch)>, ArrowError> {
    let times: Vec<&PrimitiveArray<TimestampNanosecondType>> = ["Timestamp", "ObservedTimestamp"]
        .iter()
        .filter_map(|n| {
            batch
                .column_by_name(n)?
                .as_primitive_opt::<TimestampNanosecondType>()
        })
        .collect();
    let services = if by_service {
        batch
            .column_by_name("ServiceName")
            .and_then(|c| c.as_string_opt::<i32>())
    } else {
        None
    };
    let mut keys: Vec<PartitionKey> = Vec::new();
    let mut rows_of: Vec<Vec<u32>> = Vec::new();
    let mut last = usize::MAX;
    for i in 0..batch.num_rows() {
        let hour = row_time(&times, i, now_nanos).div_euclid(NANOS_PER_HOUR);
        let service: Option<Option<&str>> =
            by_service.then(|| services.filter(|s| s.is_valid(i)).map(|s| s.value(i)));
        let same = |k: &PartitionKey| k.hour == hour && k.service.as_ref().map(|o| o.as_deref()) == service;
        let slot = if last < keys.len() && same(&keys[last]) {
            last
        } else if let Some(pos) = keys.iter().position(same) {
            pos
        } else {
            keys.push(PartitionKey {
                signal,
                hour,
                service: service.map(|o| o.map(str::to_string)),
            });
            rows_of.push(Vec::new());
            keys.len() - 1
        };
        last = slot;
        rows_of[slot].push(u32::try_from(i).unwrap_or(u32::MAX));
    }
    if keys.len() <= 1 {
        return Ok(keys.into_iter().map(|k| (k, batch.clone())).collect());
    }
    keys.into_iter()
        .zip(rows_of)
        .map(|(k, rows)| {
            let idx = UInt32Array::from(rows);
            Ok((k, arrow_select::take::take_record_batch(&batch, &idx)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{StringArray, TimestampNanosecondArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::schema::timestamp_type;

    const H: i64 = NANOS_PER_HOUR;

    fn batch(times: &[Option<i64>], services: &[Option<&str>]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("Timestamp", timestamp_type(), true),
            Field::new("ServiceName", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(TimestampNanosecondArray::from(times.to_vec()).with_timezone("UTC")),
                Arc::new(StringArray::from(services.to_vec())),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_089), (2025, 1, 1));
        // 2024-02-29T13:xx
        let k = PartitionKey {
            signal: Signal::Traces,
            hour: 19_782 * 24 + 13,
            service: None,
        };
        assert_eq!(k.dir(), "signal=traces/date=2024-02-29/hour=13");
    }

    #[test]
    fn service_level_is_escaped_and_null_has_hives_name() {
        let mut k = PartitionKey {
            signal: Signal::Logs,
            hour: 0,
            service: Some(Some("checkout api/v2".into())),
        };
        assert_eq!(
            k.dir(),
            "signal=logs/date=1970-01-01/hour=00/service=checkout%20api%2Fv2"
        );
        k.service = Some(None);
        assert!(k.dir().ends_with("/service=__HIVE_DEFAULT_PARTITION__"));
    }

    #[test]
    fn one_partition_is_not_copied() {
        let b = batch(&[Some(5), Some(H - 1)], &[Some("a"), Some("b")]);
        let parts = split(Signal::Traces, b, false, 0).expect("split");
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].1.num_rows(), 2);
    }

    #[test]
    fn rows_split_by_hour_and_service_keeping_order() {
        let b = batch(
            &[Some(1), Some(H + 1), Some(2), None, Some(H + 2)],
            &[Some("a"), Some("a"), Some("b"), Some("a"), Some("a")],
        );
        let parts = split(Signal::Traces, b, true, 3 * H).expect("split");
        let got: Vec<(i64, Option<Option<String>>, usize)> = parts
            .iter()
            .map(|(k, b)| (k.hour, k.service.clone(), b.num_rows()))
            .collect();
        assert_eq!(
            got,
            [
                (0, Some(Some("a".into())), 1),
                (1, Some(Some("a".into())), 2),
                (0, Some(Some("b".into())), 1),
                (3, Some(Some("a".into())), 1),
            ]
        );
        let ts = parts[1].1.column(0).as_primitive::<TimestampNanosecondType>();
        assert_eq!(ts.values().to_vec(), [H + 1, H + 2]);
    }
}
