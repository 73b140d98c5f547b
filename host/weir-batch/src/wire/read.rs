//! Bulk reads straight from the wire: fields and attributes of every entity of
//! a level as columns, encoded as wit/plugin.wit describes (the same bytes the
//! decoded form gives, see `crate::columns`).

use opentelemetry_proto::tonic::common::v1::AnyValue;
use prost::Message;
use weir_otlp::wire::{Fields, Value};
use weir_plugin_contract::Matcher;
use weir_plugin_contract::matcher::{select_field, select_values};
use weir_plugin_sdk::types::tag;
use weir_plugin_sdk::{AttributeTable, Column, Field, Level};

use super::WireBatch;
use weir_pipeline::Signal;

/// The last occurrence of each wanted field wins, as when decoding.
fn last(msg: &[u8], number: u32) -> Option<Value<'_>> {
    let mut found = None;
    let mut fields = Fields::new(msg);
    while let Some(Ok((n, v, _))) = fields.next_field() {
        if n == number {
            found = Some(v);
        }
    }
    found
}

fn bytes_of(v: Option<Value<'_>>) -> &[u8] {
    match v {
        Some(Value::Bytes(b)) => b,
        _ => &[],
    }
}

fn varint_of(v: Option<Value<'_>>) -> u64 {
    match v {
        Some(Value::Varint(x)) => x,
        _ => 0,
    }
}

fn fixed64_of(v: Option<Value<'_>>) -> u64 {
    match v {
        Some(Value::Fixed64(x)) => x,
        _ => 0,
    }
}

fn fixed32_of(v: Option<Value<'_>>) -> u32 {
    match v {
        Some(Value::Fixed32(x)) => x,
        _ => 0,
    }
}

/// An int32 enum or int32 sent as a varint (negative values are 10 bytes).
fn i32_of(v: Option<Value<'_>>) -> i32 {
    varint_of(v) as i64 as i32
}

/// Appends the tagged encoding of an encoded `AnyValue` (None: the key-value
/// has no value).
pub(crate) fn encode_any(value: Option<&[u8]>, out: &mut Vec<u8>) {
    let Some(value) = value else {
        out.push(tag::ABSENT);
        return;
    };
    // A oneof: the last of its fields on the wire is the value.
    let mut chosen = None;
    let mut fields = Fields::new(value);
    while let Some(Ok((n, v, _))) = fields.next_field() {
        if (1..=8).contains(&n) {
            chosen = Some((n, v));
        }
    }
    match chosen {
        Some((1, Value::Bytes(s))) => {
            out.push(tag::STRING);
            out.extend_from_slice(s);
        }
        Some((2, Value::Varint(b))) => {
            out.push(tag::BOOL);
            out.push(u8::from(b != 0));
        }
        Some((3, Value::Varint(i))) => {
            out.push(tag::INT);
            out.extend_from_slice(&(i as i64).to_le_bytes());
        }
        Some((4, Value::Fixed64(d))) => {
            out.push(tag::DOUBLE);
            out.extend_from_slice(&f64::from_bits(d).to_le_bytes());
        }
        Some((7, Value::Bytes(b))) => {
            out.push(tag::BYTES);
            out.extend_from_slice(b);
        }
        Some((5 | 6, _)) => {
            // Arrays and maps in their OTLP/JSON form, as the decoded form gives them.
            match AnyValue::decode(value) {
                Ok(any) => crate::columns::encode_any(Some(&any), out),
                Err(_) => out.push(tag::ABSENT),
            }
        }
        _ => out.push(tag::ABSENT),
    }
}

/// One `KeyValue`: its key and its encoded value (None: no value).
fn key_value(kv: &[u8]) -> (&[u8], Option<&[u8]>) {
    let (mut key, mut value) = (&[][..], None);
    let mut fields = Fields::new(kv);
    while let Some(Ok((n, v, _))) = fields.next_field() {
        match (n, v) {
            (1, Value::Bytes(k)) => key = k,
            (2, Value::Bytes(x)) => value = Some(x),
            _ => {}
        }
    }
    (key, value)
}

/// Calls `f` with each attribute of `msg` (attributes in field `field`).
fn each_attribute<'a>(msg: &'a [u8], field: u32, mut f: impl FnMut(&'a [u8], Option<&'a [u8]>)) {
    let mut fields = Fields::new(msg);
    while let Some(Ok((n, v, _))) = fields.next_field() {
        if n == field
            && let Value::Bytes(kv) = v
        {
            let (k, value) = key_value(kv);
            f(k, value);
        }
    }
}

/// An attribute lookup: None if there is none, Some(None) if it has no value.
type Lookup<'a> = Option<Option<&'a [u8]>>;

/// The first attribute named `key`.
fn find<'a>(msg: &'a [u8], field: u32, key: &[u8]) -> Lookup<'a> {
    let mut fields = Fields::new(msg);
    while let Some(Ok((n, v, _))) = fields.next_field() {
        if n == field
            && let Value::Bytes(kv) = v
        {
            let (k, value) = key_value(kv);
            if k == key {
                return Some(value);
            }
        }
    }
    None
}

impl WireBatch {
    /// Field number of the attributes in a message of `level`.
    fn attributes_field(&self, level: Level) -> u32 {
        match level {
            Level::Resource => 1,
            Level::Scope => 3,
            Level::Item if self.signal == Signal::Logs => 6,
            Level::Item => 9,
            Level::Event => 3,
            Level::Link => 4,
            Level::Metric | Level::Exemplar => 0,
        }
    }

    /// The encoded message of entity `e` at `level` (empty when it has none).
    pub(super) fn entity(&self, level: Level, e: usize) -> &[u8] {
        let sub = |ranges: &[(u32, u32)], entities: &[[u32; 2]]| -> &[u8] {
            let (Some(&(a, b)), Some(&[item, _])) = (ranges.get(e), entities.get(e)) else {
                return &[];
            };
            let span = self
                .items
                .get(item as usize)
                .map_or(&[][..], |body| self.bytes(body));
            span.get(a as usize..b as usize).unwrap_or(&[])
        };
        match level {
            Level::Resource => self
                .resources
                .get(e)
                .and_then(|h| h.msg.as_ref())
                .map_or(&[], |m| self.bytes(m)),
            Level::Scope => self
                .scopes
                .get(e)
                .and_then(|h| h.msg.as_ref())
                .map_or(&[], |m| self.bytes(m)),
            Level::Item => self.items.get(e).map_or(&[], |b| self.bytes(b)),
            Level::Event => sub(&self.events, &self.index.events),
            Level::Link => sub(&self.links, &self.index.links),
            Level::Metric | Level::Exemplar => &[],
        }
    }

    pub fn read_attribute(&self, level: Level, key: &str) -> Column {
        let count = self.index.count(level);
        let field = self.attributes_field(level);
        let mut col = Column::with_capacity(count, count * 16);
        for e in 0..count {
            encode_any(
                find(self.entity(level, e), field, key.as_bytes()).flatten(),
                &mut col.data,
            );
            col.end_entry();
        }
        col
    }

    pub fn read_attributes(&self, level: Level) -> AttributeTable {
        let count = self.index.count(level);
        let field = self.attributes_field(level);
        let mut entity_offsets = Vec::with_capacity(count + 1);
        entity_offsets.push(0u32);
        let mut keys = Column::with_capacity(count * 8, count * 8 * 16);
        let mut values = Column::with_capacity(count * 8, count * 8 * 24);
        for e in 0..count {
            each_attribute(self.entity(level, e), field, |k, v| {
                keys.data.extend_from_slice(k);
                keys.end_entry();
                encode_any(v, &mut values.data);
                values.end_entry();
            });
            entity_offsets.push(u32::try_from(keys.len()).unwrap_or(u32::MAX));
        }
        AttributeTable {
            entity_offsets,
            keys,
            values,
        }
    }

    pub fn read_field(&self, field: Field) -> Column {
        let count = self.items.len();
        let mut col = Column::with_capacity(count, count * 16);
        for e in 0..count {
            let item = self.entity(Level::Item, e);
            let out = &mut col.data;
            match self.signal {
                Signal::Traces => span_field(item, field, out),
                Signal::Logs => log_field(item, field, out),
                Signal::Metrics => {}
            }
            col.end_entry();
        }
        col
    }

    /// A plain field of every entity at `level`: items as [`Self::read_field`],
    /// event name and time, link ids, trace state and flags.
    pub fn read_field_at(&self, level: Level, field: Field) -> Column {
        if level == Level::Item {
            return self.read_field(field);
        }
        let count = self.index.count(level);
        let mut col = Column::with_capacity(count, count * 16);
        for e in 0..count {
            let msg = self.entity(level, e);
            let out = &mut col.data;
            match (level, field) {
                (Level::Event, Field::Name) => out.extend_from_slice(bytes_of(last(msg, 2))),
                (Level::Event, Field::Time) => out.extend_from_slice(&fixed64_of(last(msg, 1)).to_le_bytes()),
                (Level::Link, Field::TraceId) => out.extend_from_slice(bytes_of(last(msg, 1))),
                (Level::Link, Field::SpanId) => out.extend_from_slice(bytes_of(last(msg, 2))),
                (Level::Link, Field::TraceState) => out.extend_from_slice(bytes_of(last(msg, 3))),
                (Level::Link, Field::Flags) => out.extend_from_slice(&fixed32_of(last(msg, 6)).to_le_bytes()),
                _ => {}
            }
            col.end_entry();
        }
        col
    }

    /// One attribute of every entity at `level`, from the nearest entity up the
    /// tree that has it (absent where none has). Each ancestor is searched once.
    pub fn read_attribute_inherited(&self, level: Level, key: &str) -> Column {
        let count = self.index.count(level);
        let mut col = Column::with_capacity(count, count * 16);
        // The levels above, each with every entity's ancestor there and a memo
        // of that ancestor's lookup.
        let mut up: Vec<(Level, Vec<u32>, Vec<Option<Lookup<'_>>>)> = Vec::new();
        let mut current = level;
        let mut of: Vec<u32> = (0..n(count)).collect();
        while let Some(parent) = current.parent() {
            let step = self.owners(current);
            of = of
                .iter()
                .map(|&e| step.get(e as usize).copied().unwrap_or(0))
                .collect();
            up.push((parent, of.clone(), vec![None; self.index.count(parent)]));
            current = parent;
        }
        let own_field = self.attributes_field(level);
        let key = key.as_bytes();
        for e in 0..count {
            let mut found = find(self.entity(level, e), own_field, key).flatten();
            if found.is_none() {
                for (l, anc, memo) in &mut up {
                    let Some(&a) = anc.get(e) else { continue };
                    let field = self.attributes_field(*l);
                    let hit = match memo.get(a as usize) {
                        Some(Some(hit)) => *hit,
                        _ => {
                            let hit = find(self.entity(*l, a as usize), field, key);
                            if let Some(slot) = memo.get_mut(a as usize) {
                                *slot = Some(hit);
                            }
                            hit
                        }
                    };
                    if let Some(Some(v)) = hit {
                        found = Some(v);
                        break;
                    }
                }
            }
            encode_any(found, &mut col.data);
            col.end_entry();
        }
        col
    }

    pub fn owners(&self, level: Level) -> Vec<u32> {
        self.index.owners(level)
    }

    pub fn match_field(&self, level: Level, field: Field, m: &Matcher) -> Vec<u32> {
        select_field(&self.read_field_at(level, field), field, m)
    }

    pub fn match_attribute(&self, level: Level, key: &str, m: &Matcher, inherited: bool) -> Vec<u32> {
        let col = if inherited {
            self.read_attribute_inherited(level, key)
        } else {
            self.read_attribute(level, key)
        };
        select_values(&col, m)
    }
}

fn n(x: usize) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}

/// A span's status (code, message); several status fields merge.
fn status(span: &[u8]) -> (i32, &[u8]) {
    let (mut code, mut message) = (0i32, &[][..]);
    let mut fields = Fields::new(span);
    while let Some(Ok((n, v, _))) = fields.next_field() {
        if n == 15
            && let Value::Bytes(s) = v
        {
            let mut inner = Fields::new(s);
            while let Some(Ok((m, x, _))) = inner.next_field() {
                match (m, x) {
                    (2, Value::Bytes(text)) => message = text,
                    (3, Value::Varint(c)) => code = c as i64 as i32,
                    _ => {}
                }
            }
        }
    }
    (code, message)
}

fn span_field(span: &[u8], field: Field, out: &mut Vec<u8>) {
    match field {
        Field::TraceId => out.extend_from_slice(bytes_of(last(span, 1))),
        Field::SpanId => out.extend_from_slice(bytes_of(last(span, 2))),
        Field::TraceState => out.extend_from_slice(bytes_of(last(span, 3))),
        Field::ParentSpanId => out.extend_from_slice(bytes_of(last(span, 4))),
        Field::Name => out.extend_from_slice(bytes_of(last(span, 5))),
        Field::Kind => out.extend_from_slice(&i32_of(last(span, 6)).to_le_bytes()),
        Field::StartTime => out.extend_from_slice(&fixed64_of(last(span, 7)).to_le_bytes()),
        Field::EndTime => out.extend_from_slice(&fixed64_of(last(span, 8)).to_le_bytes()),
        Field::StatusCode => out.extend_from_slice(&status(span).0.to_le_bytes()),
        Field::StatusMessage => out.extend_from_slice(status(span).1),
        Field::Flags => out.extend_from_slice(&fixed32_of(last(span, 16)).to_le_bytes()),
        _ => {}
    }
}

fn log_field(log: &[u8], field: Field, out: &mut Vec<u8>) {
    match field {
        Field::Time => out.extend_from_slice(&fixed64_of(last(log, 1)).to_le_bytes()),
        Field::SeverityNumber => out.extend_from_slice(&i32_of(last(log, 2)).to_le_bytes()),
        Field::SeverityText => out.extend_from_slice(bytes_of(last(log, 3))),
        Field::Body => match last(log, 5) {
            Some(Value::Bytes(b)) => encode_any(Some(b), out),
            _ => encode_any(None, out),
        },
        Field::Flags => out.extend_from_slice(&fixed32_of(last(log, 8)).to_le_bytes()),
        Field::TraceId => out.extend_from_slice(bytes_of(last(log, 9))),
        Field::SpanId => out.extend_from_slice(bytes_of(last(log, 10))),
        Field::ObservedTime => out.extend_from_slice(&fixed64_of(last(log, 11)).to_le_bytes()),
        Field::EventName => out.extend_from_slice(bytes_of(last(log, 12))),
        _ => {}
    }
}
