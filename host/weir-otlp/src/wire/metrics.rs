//! Metric, its data and data points (opentelemetry/proto/metrics/v1/metrics.proto).

use super::common::attribute;
use super::cursor::{Cursor, I64, VARINT};
use super::envelope::{Schema, id};
use super::fault::{Res, Seg, Within};

pub(crate) struct Metrics;

impl Schema for Metrics {
    const RESOURCES: &'static str = "resource_metrics";
    const SCOPES: &'static str = "scope_metrics";
    const ITEMS: &'static str = "metrics";

    fn item(b: &[u8], at: usize) -> Res<usize> {
        metric(b, at)
    }
}

/// One kind of Metric `data` (level 4): its data points are in field 1;
/// aggregation_temporality (2) and is_monotonic (3) where the kind has them.
struct Kind {
    name: &'static str,
    point: fn(&[u8], usize) -> Res<()>,
    /// Highest scalar field number of the kind (0, 2 or 3).
    scalars: u32,
}

const GAUGE: Kind = Kind {
    name: "gauge",
    point: number_point,
    scalars: 0,
};
const SUM: Kind = Kind {
    name: "sum",
    point: number_point,
    scalars: 3,
};
const HISTOGRAM: Kind = Kind {
    name: "histogram",
    point: histogram_point,
    scalars: 2,
};
const EXPONENTIAL: Kind = Kind {
    name: "exponential_histogram",
    point: exponential_point,
    scalars: 2,
};
const SUMMARY: Kind = Kind {
    name: "summary",
    point: summary_point,
    scalars: 0,
};

/// Metric's `data` oneof by field number.
fn kind(field: u32) -> Option<&'static Kind> {
    match field {
        5 => Some(&GAUGE),
        7 => Some(&SUM),
        9 => Some(&HISTOGRAM),
        10 => Some(&EXPONENTIAL),
        11 => Some(&SUMMARY),
        _ => None,
    }
}

/// Whether field `n` of a Metric is its `data` (the level the splitter may cut).
pub(crate) fn is_data_field(n: u32) -> bool {
    kind(n).is_some()
}

/// Metric, at message level 3; returns its number of data points.
pub(crate) fn metric(b: &[u8], at: usize) -> Res<usize> {
    let mut c = Cursor::new(b, at);
    let (mut points, mut meta) = (0, 0);
    // The field number of the `data` kind seen last.
    let mut current = None;
    while let Some((n, wt)) = c.key()? {
        match n {
            1 => c.string(wt, "name")?,
            2 => c.string(wt, "description")?,
            3 => c.string(wt, "unit")?,
            12 => {
                let (kv, at) = c.len(wt, "metadata")?;
                attribute(kv, at, 4, "metadata", meta)?;
                meta += 1;
            }
            n => match kind(n) {
                Some(k) => {
                    let (d, at) = c.len(wt, k.name)?;
                    let here = data(d, at, k).within(Seg::Field(k.name))?;
                    // `data` is a oneof: another kind later replaces the earlier
                    // one when decoded (prost, Go protobuf); the same kind again
                    // merges into it. Count what a decoder will see.
                    points = if current == Some(n) { points + here } else { here };
                    current = Some(n);
                }
                None => c.skip(wt)?,
            },
        }
    }
    Ok(points)
}

fn data(b: &[u8], at: usize, kind: &Kind) -> Res<usize> {
    let mut c = Cursor::new(b, at);
    let mut n = 0;
    while let Some((f, wt)) = c.key()? {
        match f {
            1 => {
                let (p, at) = c.len(wt, "data_points")?;
                (kind.point)(p, at).within(Seg::Index("data_points", n))?;
                n += 1;
            }
            2 if kind.scalars >= 2 => c.scalar(wt, VARINT, "aggregation_temporality")?,
            3 if kind.scalars >= 3 => c.scalar(wt, VARINT, "is_monotonic")?,
            _ => c.skip(wt)?,
        }
    }
    Ok(n)
}

/// Attributes and exemplars sit at these levels below a data point.
const ATTRS_LEVEL: usize = 6;

fn number_point(b: &[u8], at: usize) -> Res<()> {
    let mut c = Cursor::new(b, at);
    let (mut attrs, mut exemplars) = (0, 0);
    while let Some((n, wt)) = c.key()? {
        match n {
            7 => {
                let (kv, at) = c.len(wt, "attributes")?;
                attribute(kv, at, ATTRS_LEVEL, "attributes", attrs)?;
                attrs += 1;
            }
            2 => c.scalar(wt, I64, "start_time_unix_nano")?,
            3 => c.scalar(wt, I64, "time_unix_nano")?,
            4 => c.scalar(wt, I64, "as_double")?,
            6 => c.scalar(wt, I64, "as_int")?,
            5 => {
                let (e, at) = c.len(wt, "exemplars")?;
                exemplar(e, at).within(Seg::Index("exemplars", exemplars))?;
                exemplars += 1;
            }
            8 => c.scalar(wt, VARINT, "flags")?,
            _ => c.skip(wt)?,
        }
    }
    Ok(())
}

fn histogram_point(b: &[u8], at: usize) -> Res<()> {
    let mut c = Cursor::new(b, at);
    let (mut attrs, mut exemplars) = (0, 0);
    while let Some((n, wt)) = c.key()? {
        match n {
            9 => {
                let (kv, at) = c.len(wt, "attributes")?;
                attribute(kv, at, ATTRS_LEVEL, "attributes", attrs)?;
                attrs += 1;
            }
            2 => c.scalar(wt, I64, "start_time_unix_nano")?,
            3 => c.scalar(wt, I64, "time_unix_nano")?,
            4 => c.scalar(wt, I64, "count")?,
            5 => c.scalar(wt, I64, "sum")?,
            6 => c.repeated(wt, I64, "bucket_counts")?,
            7 => c.repeated(wt, I64, "explicit_bounds")?,
            8 => {
                let (e, at) = c.len(wt, "exemplars")?;
                exemplar(e, at).within(Seg::Index("exemplars", exemplars))?;
                exemplars += 1;
            }
            10 => c.scalar(wt, VARINT, "flags")?,
            11 => c.scalar(wt, I64, "min")?,
            12 => c.scalar(wt, I64, "max")?,
            _ => c.skip(wt)?,
        }
    }
    Ok(())
}

fn exponential_point(b: &[u8], at: usize) -> Res<()> {
    let mut c = Cursor::new(b, at);
    let (mut attrs, mut exemplars) = (0, 0);
    while let Some((n, wt)) = c.key()? {
        match n {
            1 => {
                let (kv, at) = c.len(wt, "attributes")?;
                attribute(kv, at, ATTRS_LEVEL, "attributes", attrs)?;
                attrs += 1;
            }
            2 => c.scalar(wt, I64, "start_time_unix_nano")?,
            3 => c.scalar(wt, I64, "time_unix_nano")?,
            4 => c.scalar(wt, I64, "count")?,
            5 => c.scalar(wt, I64, "sum")?,
            6 => c.scalar(wt, VARINT, "scale")?,
            7 => c.scalar(wt, I64, "zero_count")?,
            8 => {
                let (v, at) = c.len(wt, "positive")?;
                buckets(v, at).within(Seg::Field("positive"))?;
            }
            9 => {
                let (v, at) = c.len(wt, "negative")?;
                buckets(v, at).within(Seg::Field("negative"))?;
            }
            10 => c.scalar(wt, VARINT, "flags")?,
            11 => {
                let (e, at) = c.len(wt, "exemplars")?;
                exemplar(e, at).within(Seg::Index("exemplars", exemplars))?;
                exemplars += 1;
            }
            12 => c.scalar(wt, I64, "min")?,
            13 => c.scalar(wt, I64, "max")?,
            14 => c.scalar(wt, I64, "zero_threshold")?,
            _ => c.skip(wt)?,
        }
    }
    Ok(())
}

fn buckets(b: &[u8], at: usize) -> Res<()> {
    let mut c = Cursor::new(b, at);
    while let Some((n, wt)) = c.key()? {
        match n {
            1 => c.scalar(wt, VARINT, "offset")?,
            2 => c.repeated(wt, VARINT, "bucket_counts")?,
            _ => c.skip(wt)?,
        }
    }
    Ok(())
}

fn summary_point(b: &[u8], at: usize) -> Res<()> {
    let mut c = Cursor::new(b, at);
    let (mut attrs, mut quantiles) = (0, 0);
    while let Some((n, wt)) = c.key()? {
        match n {
            7 => {
                let (kv, at) = c.len(wt, "attributes")?;
                attribute(kv, at, ATTRS_LEVEL, "attributes", attrs)?;
                attrs += 1;
            }
            2 => c.scalar(wt, I64, "start_time_unix_nano")?,
            3 => c.scalar(wt, I64, "time_unix_nano")?,
            4 => c.scalar(wt, I64, "count")?,
            5 => c.scalar(wt, I64, "sum")?,
            6 => {
                let (q, at) = c.len(wt, "quantile_values")?;
                quantile(q, at).within(Seg::Index("quantile_values", quantiles))?;
                quantiles += 1;
            }
            8 => c.scalar(wt, VARINT, "flags")?,
            _ => c.skip(wt)?,
        }
    }
    Ok(())
}

fn quantile(b: &[u8], at: usize) -> Res<()> {
    let mut c = Cursor::new(b, at);
    while let Some((n, wt)) = c.key()? {
        match n {
            1 => c.scalar(wt, I64, "quantile")?,
            2 => c.scalar(wt, I64, "value")?,
            _ => c.skip(wt)?,
        }
    }
    Ok(())
}

/// Exemplar (level 6): its ids are optional (absent when the measurement was
/// not in a sampled trace).
fn exemplar(b: &[u8], at: usize) -> Res<()> {
    let mut c = Cursor::new(b, at);
    let mut attrs = 0;
    while let Some((n, wt)) = c.key()? {
        match n {
            7 => {
                let (kv, at) = c.len(wt, "filtered_attributes")?;
                attribute(kv, at, ATTRS_LEVEL + 1, "filtered_attributes", attrs)?;
                attrs += 1;
            }
            2 => c.scalar(wt, I64, "time_unix_nano")?,
            3 => c.scalar(wt, I64, "as_double")?,
            6 => c.scalar(wt, I64, "as_int")?,
            4 => {
                let (v, at) = c.len(wt, "span_id")?;
                id(v, at, &[0, 8], "span_id")?;
            }
            5 => {
                let (v, at) = c.len(wt, "trace_id")?;
                id(v, at, &[0, 16], "trace_id")?;
            }
            _ => c.skip(wt)?,
        }
    }
    Ok(())
}
