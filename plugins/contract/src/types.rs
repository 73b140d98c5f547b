//! Plain Rust forms of the contract's types (see wit/plugin.wit). The host uses
//! them too, so a plugin compiled natively and the same plugin compiled to Wasm
//! see exactly the same data.

/// Signal of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
}

/// Where an attribute lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    Resource,
    Scope,
    /// Spans, log records or metric data points.
    Item,
    /// Span events.
    Event,
    /// Span links.
    Link,
    /// Metrics (weir:plugin@0.2.0): a metric's name, description, unit and
    /// metadata attributes; the parent of its data points.
    Metric,
    /// Exemplars of metric data points (weir:plugin@0.2.0).
    Exemplar,
}

impl Level {
    pub const ALL: [Level; 7] = [
        Level::Resource,
        Level::Scope,
        Level::Item,
        Level::Event,
        Level::Link,
        Level::Metric,
        Level::Exemplar,
    ];

    /// The levels weir:plugin@0.1.0 has.
    pub const V0_1: [Level; 5] = [
        Level::Resource,
        Level::Scope,
        Level::Item,
        Level::Event,
        Level::Link,
    ];

    /// Position in [`Level::ALL`].
    pub fn index(self) -> usize {
        match self {
            Level::Resource => 0,
            Level::Scope => 1,
            Level::Item => 2,
            Level::Event => 3,
            Level::Link => 4,
            Level::Metric => 5,
            Level::Exemplar => 6,
        }
    }

    /// The parent level (`None` for resources). Data points (items of
    /// metrics) have scopes as parents, as in 0.1.0; their metric is an
    /// ancestor reached with `ancestors(item, metric)`.
    pub fn parent(self) -> Option<Level> {
        match self {
            Level::Resource => None,
            Level::Scope => Some(Level::Resource),
            Level::Metric | Level::Item => Some(Level::Scope),
            Level::Event | Level::Link | Level::Exemplar => Some(Level::Item),
        }
    }
}

/// Plain per-item fields (which signal has which: see wit/plugin.wit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Name,
    TraceId,
    SpanId,
    ParentSpanId,
    Kind,
    StatusCode,
    StatusMessage,
    StartTime,
    EndTime,
    TraceState,
    Flags,
    Body,
    SeverityText,
    SeverityNumber,
    Time,
    ObservedTime,
    EventName,
    Unit,
    /// A metric's description (weir:plugin@0.2.0).
    Description,
}

/// One value per entity, all in one buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Column {
    pub data: Vec<u8>,
    pub offsets: Vec<u32>,
}

impl Column {
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entry `i`'s bytes (empty if out of range).
    pub fn get(&self, i: usize) -> &[u8] {
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => self.data.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Entry `i` as UTF-8 text ("" if it is not).
    pub fn str(&self, i: usize) -> &str {
        std::str::from_utf8(self.get(i)).unwrap_or("")
    }

    /// Entry `i` as a little-endian u32 (0 if it is not 4 bytes).
    pub fn u32(&self, i: usize) -> u32 {
        self.get(i).try_into().map(u32::from_le_bytes).unwrap_or(0)
    }

    /// Entry `i` as a little-endian u64 (0 if it is not 8 bytes).
    pub fn u64(&self, i: usize) -> u64 {
        self.get(i).try_into().map(u64::from_le_bytes).unwrap_or(0)
    }

    /// Entry `i` decoded as a tagged value.
    pub fn value(&self, i: usize) -> ValueRef<'_> {
        ValueRef::decode(self.get(i))
    }

    /// Appends one entry (used by hosts building columns).
    pub fn push(&mut self, bytes: &[u8]) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.data.extend_from_slice(bytes);
        self.offsets.push(self.data.len() as u32);
    }

    /// Ends an entry whose bytes were written straight into `data`.
    pub fn end_entry(&mut self) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.offsets.push(self.data.len() as u32);
    }

    pub fn with_capacity(entries: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(entries + 1);
        offsets.push(0);
        Column {
            data: Vec::with_capacity(bytes),
            offsets,
        }
    }
}

/// Every attribute of every entity at one level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeTable {
    pub entity_offsets: Vec<u32>,
    pub keys: Column,
    pub values: Column,
}

/// Tag bytes of the value encoding used inside columns.
pub mod tag {
    pub const ABSENT: u8 = 0;
    pub const STRING: u8 = 1;
    pub const INT: u8 = 2;
    pub const DOUBLE: u8 = 3;
    pub const BOOL: u8 = 4;
    pub const BYTES: u8 = 5;
    pub const JSON: u8 = 6;
}

/// A value read from a column, borrowing its bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Absent,
    Str(&'a str),
    Int(i64),
    Double(f64),
    Bool(bool),
    Bytes(&'a [u8]),
    Json(&'a str),
}

impl<'a> ValueRef<'a> {
    pub fn decode(bytes: &'a [u8]) -> ValueRef<'a> {
        let Some((&t, rest)) = bytes.split_first() else {
            return ValueRef::Absent;
        };
        let eight = || <[u8; 8]>::try_from(rest).unwrap_or([0; 8]);
        match t {
            tag::STRING => ValueRef::Str(std::str::from_utf8(rest).unwrap_or("")),
            tag::INT => ValueRef::Int(i64::from_le_bytes(eight())),
            tag::DOUBLE => ValueRef::Double(f64::from_le_bytes(eight())),
            tag::BOOL => ValueRef::Bool(rest.first() == Some(&1)),
            tag::BYTES => ValueRef::Bytes(rest),
            tag::JSON => ValueRef::Json(std::str::from_utf8(rest).unwrap_or("")),
            _ => ValueRef::Absent,
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            ValueRef::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, ValueRef::Absent)
    }

    /// Any scalar as text (ints, doubles and bools formatted), for matching rules.
    pub fn to_text(&self) -> Option<String> {
        match self {
            ValueRef::Str(s) | ValueRef::Json(s) => Some((*s).to_string()),
            ValueRef::Int(i) => Some(i.to_string()),
            ValueRef::Double(d) => Some(d.to_string()),
            ValueRef::Bool(b) => Some(b.to_string()),
            ValueRef::Bytes(_) | ValueRef::Absent => None,
        }
    }

    pub fn to_owned(&self) -> Option<Value> {
        Some(match *self {
            ValueRef::Absent => return None,
            ValueRef::Str(s) => Value::Str(s.into()),
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Double(d) => Value::Double(d),
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Bytes(b) => Value::Bytes(b.to_vec()),
            ValueRef::Json(s) => Value::Json(s.into()),
        })
    }

    /// Appends this value's tagged encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match *self {
            ValueRef::Absent => out.push(tag::ABSENT),
            ValueRef::Str(s) => {
                out.push(tag::STRING);
                out.extend_from_slice(s.as_bytes());
            }
            ValueRef::Int(i) => {
                out.push(tag::INT);
                out.extend_from_slice(&i.to_le_bytes());
            }
            ValueRef::Double(d) => {
                out.push(tag::DOUBLE);
                out.extend_from_slice(&d.to_le_bytes());
            }
            ValueRef::Bool(b) => {
                out.push(tag::BOOL);
                out.push(u8::from(b));
            }
            ValueRef::Bytes(b) => {
                out.push(tag::BYTES);
                out.extend_from_slice(b);
            }
            ValueRef::Json(s) => {
                out.push(tag::JSON);
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
}

/// A value written by an edit.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    Bytes(Vec<u8>),
    /// An array or map as JSON text.
    Json(String),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.into())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

/// One queued change.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Sets (`Some`) or removes (`None`) an attribute of one entity.
    Attribute {
        level: Level,
        entity: u32,
        key: String,
        value: Option<Value>,
    },
    /// Sets a plain field of one item.
    Field { field: Field, item: u32, value: Value },
    /// The same attribute edit on many entities of one level (weir:plugin@0.2.0).
    AttributeMany {
        level: Level,
        entities: Vec<u32>,
        key: String,
        value: Option<Value>,
    },
    /// Sets a plain field of any entity (weir:plugin@0.2.0): an item's, an
    /// event's name, a metric's name, description or unit.
    EntityField {
        level: Level,
        entity: u32,
        field: Field,
        value: Value,
    },
}

/// Everything a plugin asked for in one call, applied by the host afterwards.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub replace: Option<Vec<u8>>,
    pub edits: Vec<Edit>,
    pub drops: Vec<u32>,
    pub routes: Vec<(String, Vec<u32>)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.replace.is_none() && self.edits.is_empty() && self.drops.is_empty() && self.routes.is_empty()
    }
}
