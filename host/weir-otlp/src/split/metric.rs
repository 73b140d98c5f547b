//! Cuts one Metric too large for a piece between its data points.

use super::pack::{field_header, framed};
use crate::wire::cursor::{Cursor, LEN};
use crate::wire::metrics::is_data_field;

/// An encoded Metric field and its number of data points.
pub(crate) type Part = (Vec<u8>, usize);
/// What cannot be made to fit (a noun) and the smallest Metric field length holding it.
pub(crate) type Unfit = (&'static str, usize);

/// Cuts an encoded Metric (`body`, its message without key and length) into
/// Metric fields (key, length, message) holding consecutive runs of its data
/// points, each with the Metric's other fields and its data's other fields.
/// `fits(len)` says whether a Metric field of `len` bytes fits in a piece.
/// Returns (field, data points) per part, or what cannot be made to fit and
/// the length of the smallest Metric field holding it.
pub(crate) fn split(body: &[u8], fits: impl Fn(usize) -> bool) -> Result<Vec<Part>, Unfit> {
    let whole = ("metric", framed(body.len()));
    let mut envelope = Vec::new();
    let mut data = None;
    let mut c = Cursor::new(body, 0);
    loop {
        let start = c.offset();
        let Ok(key) = c.key() else { return Err(whole) };
        let Some((n, wt)) = key else { break };
        if is_data_field(n) && wt == LEN {
            let Ok((d, _)) = c.len(wt, "") else {
                return Err(whole);
            };
            // A second data field would merge into or replace the first: not cut.
            if data.replace((n, d)).is_some() {
                return Err(whole);
            }
        } else {
            if c.skip(wt).is_err() {
                return Err(whole);
            }
            envelope.extend_from_slice(&body[start..c.offset()]);
        }
    }
    let Some((number, data)) = data else {
        return Err(whole);
    };
    let Ok(number) = u8::try_from(number) else {
        return Err(whole);
    };
    let mut data_envelope = Vec::new();
    let mut points = Vec::new();
    let mut c = Cursor::new(data, 0);
    loop {
        let start = c.offset();
        let Ok(key) = c.key() else { return Err(whole) };
        let Some((n, wt)) = key else { break };
        if c.skip(wt).is_err() {
            return Err(whole);
        }
        let field = &data[start..c.offset()];
        if n == 1 && wt == LEN {
            points.push(field);
        } else {
            data_envelope.extend_from_slice(field);
        }
    }
    // The Metric field's length with `points_len` bytes of data points.
    let metric_len = |points_len: usize| framed(envelope.len() + framed(data_envelope.len() + points_len));
    let write = |run: &[&[u8]]| {
        let points_len: usize = run.iter().map(|p| p.len()).sum();
        let data_len = data_envelope.len() + points_len;
        let body_len = envelope.len() + framed(data_len);
        let mut out = Vec::with_capacity(framed(body_len));
        field_header(&mut out, 2, body_len);
        out.extend_from_slice(&envelope);
        field_header(&mut out, number, data_len);
        out.extend_from_slice(&data_envelope);
        for p in run {
            out.extend_from_slice(p);
        }
        (out, run.len())
    };
    let mut parts = Vec::new();
    let (mut start, mut run_len) = (0, 0);
    for (i, point) in points.iter().enumerate() {
        if fits(metric_len(run_len + point.len())) {
            run_len += point.len();
            continue;
        }
        if i == start || !fits(metric_len(point.len())) {
            return Err(("metric data point", metric_len(point.len())));
        }
        parts.push(write(&points[start..i]));
        (start, run_len) = (i, point.len());
    }
    if start == points.len() {
        // No data points: the Metric's own fields are what does not fit.
        return Err(whole);
    }
    parts.push(write(&points[start..]));
    Ok(parts)
}
