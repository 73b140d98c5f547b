//! The levels every signal shares: request → ResourceX → ScopeX → item.

use super::common;
use super::cursor::Cursor;
use super::fault::{Res, Seg, Within, fault};

/// What differs between the signals at the envelope levels.
pub(crate) trait Schema {
    /// Field names of the repeated fields, for error paths.
    const RESOURCES: &'static str;
    const SCOPES: &'static str;
    const ITEMS: &'static str;
    /// Validates one item (at message level 3) and returns how many items it
    /// counts for (data points, for a metric).
    fn item(b: &[u8], at: usize) -> Res<usize>;
}

/// Validates an encoded `Export*ServiceRequest` and counts its items.
pub(crate) fn request<S: Schema>(b: &[u8]) -> Res<usize> {
    let mut c = Cursor::new(b, 0);
    let (mut n, mut i) = (0, 0);
    while let Some((f, wt)) = c.key()? {
        match f {
            1 => {
                let (r, at) = c.len(wt, S::RESOURCES)?;
                n += resource_x::<S>(r, at).within(Seg::Index(S::RESOURCES, i))?;
                i += 1;
            }
            _ => c.skip(wt)?,
        }
    }
    Ok(n)
}

fn resource_x<S: Schema>(b: &[u8], at: usize) -> Res<usize> {
    let mut c = Cursor::new(b, at);
    let (mut n, mut i) = (0, 0);
    while let Some((f, wt)) = c.key()? {
        match f {
            1 => {
                let (r, at) = c.len(wt, "resource")?;
                common::resource(r, at).within(Seg::Field("resource"))?;
            }
            2 => {
                let (s, at) = c.len(wt, S::SCOPES)?;
                n += scope_x::<S>(s, at).within(Seg::Index(S::SCOPES, i))?;
                i += 1;
            }
            3 => c.string(wt, "schema_url")?,
            _ => c.skip(wt)?,
        }
    }
    Ok(n)
}

fn scope_x<S: Schema>(b: &[u8], at: usize) -> Res<usize> {
    let mut c = Cursor::new(b, at);
    let (mut n, mut i) = (0, 0);
    while let Some((f, wt)) = c.key()? {
        match f {
            1 => {
                let (s, at) = c.len(wt, "scope")?;
                common::scope(s, at).within(Seg::Field("scope"))?;
            }
            2 => {
                let (item, at) = c.len(wt, S::ITEMS)?;
                n += S::item(item, at).within(Seg::Index(S::ITEMS, i))?;
                i += 1;
            }
            3 => c.string(wt, "schema_url")?,
            _ => c.skip(wt)?,
        }
    }
    Ok(n)
}

/// Checks the length of an id field (`allowed` lists the valid lengths).
#[inline]
pub(crate) fn id(b: &[u8], at: usize, allowed: &'static [usize], name: &'static str) -> Res<()> {
    if allowed.contains(&b.len()) {
        return Ok(());
    }
    Err(bad_id(b.len(), at, allowed, name))
}

#[cold]
fn bad_id(len: usize, at: usize, allowed: &'static [usize], name: &'static str) -> Box<super::fault::Fault> {
    let what = match allowed {
        [16] => "must be 16 bytes",
        [8] => "must be 8 bytes",
        [0, 16] => "must be empty or 16 bytes",
        _ => "must be empty or 8 bytes",
    };
    let found = if len == 0 {
        "missing".to_string()
    } else {
        format!("{len} bytes")
    };
    fault(what, at).note(found).at(Seg::Field(name))
}

/// Checks a required id that never appeared (a missing field has length 0).
#[inline]
pub(crate) fn required(seen: bool, at: usize, allowed: &'static [usize], name: &'static str) -> Res<()> {
    if seen { Ok(()) } else { id(&[], at, allowed, name) }
}
