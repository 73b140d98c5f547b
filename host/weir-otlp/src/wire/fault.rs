//! Errors of the validating walk, and the field path they carry.
//!
//! The path is built only when something is wrong: each level pushes its
//! segment as the error travels up, so a valid request pays nothing for it.

use std::fmt::Write as _;

use super::WireError;

/// One step of a field path.
#[derive(Debug)]
pub(crate) enum Seg {
    /// `.name`
    Field(&'static str),
    /// `.name[3]`
    Index(&'static str, usize),
    /// `.name["key"]`, for attributes whose key could be read.
    Key(&'static str, String),
}

#[derive(Debug)]
pub(crate) struct Fault {
    what: &'static str,
    note: Option<String>,
    offset: usize,
    /// Innermost segment first.
    path: Vec<Seg>,
}

/// Longer paths are shown as their first and last `KEEP` segments.
const MAX_SEGMENTS: usize = 24;
const KEEP: usize = 10;

pub(crate) type Res<T> = Result<T, Box<Fault>>;

#[cold]
pub(crate) fn fault(what: &'static str, offset: usize) -> Box<Fault> {
    Box::new(Fault {
        what,
        note: None,
        offset,
        path: Vec::new(),
    })
}

impl Fault {
    /// Adds what was found, e.g. a length, shown in parentheses after `what`.
    #[cold]
    pub(crate) fn note(mut self: Box<Self>, note: String) -> Box<Self> {
        self.note = Some(note);
        self
    }

    #[cold]
    pub(crate) fn at(mut self: Box<Self>, seg: Seg) -> Box<Self> {
        self.path.push(seg);
        self
    }

    pub(crate) fn into_error(self) -> WireError {
        let mut path = String::new();
        let n = self.path.len();
        for (i, seg) in self.path.iter().rev().enumerate() {
            // A path through deep nesting keeps its ends, which say where it is.
            if n > MAX_SEGMENTS && (KEEP..n - KEEP).contains(&i) {
                if i == KEEP {
                    path.push_str(".…");
                }
                continue;
            }
            let dot = if path.is_empty() { "" } else { "." };
            // Writing to a String cannot fail.
            let _ = match seg {
                Seg::Field(name) => write!(path, "{dot}{name}"),
                Seg::Index(name, i) => write!(path, "{dot}{name}[{i}]"),
                Seg::Key(name, key) => write!(path, "{dot}{name}[{key:?}]"),
            };
        }
        WireError {
            path,
            what: self.what,
            note: self.note,
            offset: self.offset,
        }
    }
}

/// Adds a path segment to the error of a nested message.
pub(crate) trait Within {
    fn within(self, seg: Seg) -> Self;
}

impl<T> Within for Res<T> {
    #[inline]
    fn within(self, seg: Seg) -> Self {
        self.map_err(|f| f.at(seg))
    }
}
