//! Column builders shared by the span and log converters: attribute maps,
//! timestamps, and the resource and scope columns every row repeats.

use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, StringBuilder, TimestampNanosecondBuilder};
use arrow_array::{ArrayRef, MapArray, StringArray, StructArray};
use arrow_buffer::{BooleanBufferBuilder, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType};

use super::render::AnyRef;
use super::wire::{Field, Reader, WireError, text};
use crate::schema;

/// The resource attribute that gets its own column (`ServiceName`).
pub const SERVICE_NAME: &str = "service.name";

/// Nanoseconds since the epoch as Arrow stores them (saturating past year 2262).
pub fn nanos(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

pub fn timestamps(capacity: usize) -> TimestampNanosecondBuilder {
    TimestampNanosecondBuilder::with_capacity(capacity).with_timezone("UTC")
}

pub fn offset(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// Appends a rendered value (or null for an empty one) to a string column.
pub fn push_any(out: &mut StringBuilder, any: Option<&[u8]>) -> Result<(), WireError> {
    match any.map(AnyRef::parse).transpose()?.unwrap_or(AnyRef::Empty) {
        AnyRef::Empty => out.append_null(),
        AnyRef::Str(s) => out.append_value(s),
        v => {
            if v.write(out)? {
                out.append_value("");
            } else {
                out.append_null();
            }
        }
    }
    Ok(())
}

/// An encoded `KeyValue` as (key, encoded value).
pub fn key_value(kv: &[u8]) -> Result<(&str, Option<&[u8]>), WireError> {
    let mut key = "";
    let mut value = None;
    for f in Reader::new(kv) {
        match f? {
            (1, Field::Bytes(b)) => key = text(b)?,
            (2, Field::Bytes(b)) => value = Some(b),
            _ => {}
        }
    }
    Ok((key, value))
}

/// Builds a `Map<Utf8, Utf8>` column (see [`schema::attributes_field`]).
pub struct MapColumn {
    keys: StringBuilder,
    values: StringBuilder,
    offsets: Vec<i32>,
}

impl MapColumn {
    pub fn with_capacity(rows: usize, entries: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        MapColumn {
            keys: StringBuilder::with_capacity(entries, entries * 16),
            values: StringBuilder::with_capacity(entries, entries * 24),
            offsets,
        }
    }

    /// Adds an encoded `KeyValue` to the current row.
    pub fn push_encoded(&mut self, kv: &[u8]) -> Result<(), WireError> {
        let (key, value) = key_value(kv)?;
        push_any(&mut self.values, value)?;
        self.keys.append_value(key);
        Ok(())
    }

    /// Closes the current row.
    pub fn end_row(&mut self) {
        self.offsets.push(offset(self.keys.len()));
    }

    /// Adds encoded `KeyValue`s as one whole row.
    pub fn row(&mut self, kvs: &[&[u8]]) -> Result<(), WireError> {
        for kv in kvs {
            self.push_encoded(kv)?;
        }
        self.end_row();
        Ok(())
    }

    pub fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let DataType::Struct(fields) = schema::map_entries().data_type().clone() else {
            return Err(ArrowError::SchemaError("map entries must be a struct".into()));
        };
        let keys: ArrayRef = Arc::new(self.keys.finish());
        let values: ArrayRef = Arc::new(self.values.finish());
        let entries = StructArray::try_new(fields, vec![keys, values], None)?;
        let offsets = OffsetBuffer::new(std::mem::take(&mut self.offsets).into());
        self.offsets.push(0);
        Ok(Arc::new(MapArray::try_new(
            schema::map_entries(),
            offsets,
            entries,
            None,
            false,
        )?))
    }
}

/// Attributes rendered once, for all the rows they apply to.
type Rendered = Vec<(String, Option<String>)>;

fn render_attributes(
    kvs: &[&[u8]],
    service_name: Option<&mut Option<String>>,
) -> Result<Rendered, WireError> {
    let mut out = Vec::with_capacity(kvs.len());
    let mut service_name = service_name;
    for kv in kvs {
        let (key, value) = key_value(kv)?;
        let rendered = match value {
            Some(v) => AnyRef::parse(v)?.to_owned_string()?,
            None => None,
        };
        match service_name.as_deref_mut() {
            Some(slot @ None) if key == SERVICE_NAME => *slot = Some(rendered.unwrap_or_default()),
            _ => out.push((key.to_string(), rendered)),
        }
    }
    Ok(out)
}

/// Rendered attributes laid out as a map column stores one row (key bytes,
/// value bytes, their end offsets), so repeating them on every row of their
/// resource or scope is a few bulk copies instead of a push per entry.
#[derive(Default, Clone)]
pub struct MapRow {
    keys: Vec<u8>,
    key_ends: Vec<i32>,
    values: Vec<u8>,
    value_ends: Vec<i32>,
    value_valid: Vec<bool>,
}

impl MapRow {
    fn new(entries: &Rendered) -> MapRow {
        let mut row = MapRow::default();
        for (k, v) in entries {
            row.keys.extend_from_slice(k.as_bytes());
            row.key_ends.push(offset(row.keys.len()));
            row.values
                .extend_from_slice(v.as_deref().unwrap_or_default().as_bytes());
            row.value_ends.push(offset(row.values.len()));
            row.value_valid.push(v.is_some());
        }
        row
    }
}

/// A map column whose rows are whole [`MapRow`]s.
pub struct RepeatedMapColumn {
    rows: usize,
    keys: Vec<u8>,
    key_offsets: Vec<i32>,
    values: Vec<u8>,
    value_offsets: Vec<i32>,
    value_valid: BooleanBufferBuilder,
    entry_offsets: Vec<i32>,
}

impl RepeatedMapColumn {
    pub fn with_capacity(rows: usize) -> Self {
        RepeatedMapColumn {
            rows,
            keys: Vec::new(),
            key_offsets: vec![0],
            values: Vec::new(),
            value_offsets: vec![0],
            value_valid: BooleanBufferBuilder::new(0),
            entry_offsets: {
                let mut v = Vec::with_capacity(rows + 1);
                v.push(0);
                v
            },
        }
    }

    pub fn push(&mut self, row: &MapRow) {
        if self.keys.is_empty() {
            // Sized by the first row: rows of one batch mostly share a resource.
            self.keys.reserve(self.rows * row.keys.len());
            self.values.reserve(self.rows * row.values.len());
            self.key_offsets.reserve(self.rows * row.key_ends.len());
            self.value_offsets.reserve(self.rows * row.value_ends.len());
        }
        let base = offset(self.keys.len());
        self.keys.extend_from_slice(&row.keys);
        self.key_offsets.extend(row.key_ends.iter().map(|e| base + e));
        let base = offset(self.values.len());
        self.values.extend_from_slice(&row.values);
        self.value_offsets.extend(row.value_ends.iter().map(|e| base + e));
        self.value_valid.append_slice(&row.value_valid);
        self.entry_offsets.push(offset(self.key_offsets.len() - 1));
    }

    pub fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let DataType::Struct(fields) = schema::map_entries().data_type().clone() else {
            return Err(ArrowError::SchemaError("map entries must be a struct".into()));
        };
        let strings = |offsets: &mut Vec<i32>, bytes: &mut Vec<u8>, nulls: Option<NullBuffer>| {
            let offsets = OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0])));
            StringArray::try_new(offsets, Buffer::from_vec(std::mem::take(bytes)), nulls)
        };
        let nulls = NullBuffer::new(self.value_valid.finish());
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        let keys: ArrayRef = Arc::new(strings(&mut self.key_offsets, &mut self.keys, None)?);
        let values: ArrayRef = Arc::new(strings(&mut self.value_offsets, &mut self.values, nulls)?);
        let entries = StructArray::try_new(fields, vec![keys, values], None)?;
        let offsets = OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(
            &mut self.entry_offsets,
            vec![0],
        )));
        Ok(Arc::new(MapArray::try_new(
            schema::map_entries(),
            offsets,
            entries,
            None,
            false,
        )?))
    }
}

/// A resource and a scope, pre-rendered once for all the rows they apply to.
#[derive(Default, Clone)]
pub struct Context {
    service_name: Option<String>,
    resource_attributes: Rendered,
    resource_row: MapRow,
    resource_schema_url: String,
    scope_name: String,
    scope_version: String,
    scope_row: MapRow,
    scope_schema_url: String,
}

impl Context {
    /// From an encoded `Resource` and its `Resource{Spans,Logs}.schema_url`.
    pub fn resource(resource: Option<&[u8]>, schema_url: &str) -> Result<Context, WireError> {
        let mut kvs = Vec::new();
        for f in Reader::new(resource.unwrap_or_default()) {
            if let (1, Field::Bytes(kv)) = f? {
                kvs.push(kv);
            }
        }
        let mut service_name = None;
        let resource_attributes = render_attributes(&kvs, Some(&mut service_name))?;
        Ok(Context {
            service_name: service_name.filter(|s| !s.is_empty()),
            resource_row: MapRow::new(&resource_attributes),
            resource_attributes,
            resource_schema_url: schema_url.to_string(),
            ..Context::default()
        })
    }

    /// The archive's row order of resources: by service name (a missing one
    /// last), then the other attributes and the schema url.
    pub fn resource_order(&self, other: &Context) -> std::cmp::Ordering {
        fn key(c: &Context) -> (bool, Option<&str>, &Rendered, &str) {
            (
                c.service_name.is_none(),
                c.service_name.as_deref(),
                &c.resource_attributes,
                c.resource_schema_url.as_str(),
            )
        }
        key(self).cmp(&key(other))
    }

    /// Sets the scope from an encoded `InstrumentationScope` and its `Scope{Spans,Logs}.schema_url`.
    pub fn set_scope(&mut self, scope: Option<&[u8]>, schema_url: &str) -> Result<(), WireError> {
        self.scope_name.clear();
        self.scope_version.clear();
        let mut kvs = Vec::new();
        for f in Reader::new(scope.unwrap_or_default()) {
            match f? {
                (1, Field::Bytes(b)) => self.scope_name = text(b)?.to_string(),
                (2, Field::Bytes(b)) => self.scope_version = text(b)?.to_string(),
                (3, Field::Bytes(kv)) => kvs.push(kv),
                _ => {}
            }
        }
        self.scope_row = MapRow::new(&render_attributes(&kvs, None)?);
        self.scope_schema_url = schema_url.to_string();
        Ok(())
    }
}

/// The columns every row ends with: ServiceName, ResourceAttributes,
/// ResourceSchemaUrl, ScopeName, ScopeVersion, ScopeAttributes, ScopeSchemaUrl.
pub struct ContextColumns {
    service_name: StringBuilder,
    resource_attributes: RepeatedMapColumn,
    resource_schema_url: StringBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attributes: RepeatedMapColumn,
    scope_schema_url: StringBuilder,
}

impl ContextColumns {
    pub fn with_capacity(rows: usize) -> Self {
        ContextColumns {
            service_name: StringBuilder::with_capacity(rows, rows * 8),
            resource_attributes: RepeatedMapColumn::with_capacity(rows),
            resource_schema_url: StringBuilder::with_capacity(rows, 0),
            scope_name: StringBuilder::with_capacity(rows, rows * 16),
            scope_version: StringBuilder::with_capacity(rows, rows * 4),
            scope_attributes: RepeatedMapColumn::with_capacity(rows),
            scope_schema_url: StringBuilder::with_capacity(rows, 0),
        }
    }

    pub fn push(&mut self, c: &Context) {
        self.service_name.append_option(c.service_name.as_deref());
        self.resource_attributes.push(&c.resource_row);
        self.resource_schema_url.append_value(&c.resource_schema_url);
        self.scope_name.append_value(&c.scope_name);
        self.scope_version.append_value(&c.scope_version);
        self.scope_attributes.push(&c.scope_row);
        self.scope_schema_url.append_value(&c.scope_schema_url);
    }

    pub fn finish(&mut self, out: &mut Vec<ArrayRef>) -> Result<(), ArrowError> {
        out.push(Arc::new(self.service_name.finish()));
        out.push(self.resource_attributes.finish()?);
        out.push(Arc::new(self.resource_schema_url.finish()));
        out.push(Arc::new(self.scope_name.finish()));
        out.push(Arc::new(self.scope_version.finish()));
        out.push(self.scope_attributes.finish()?);
        out.push(Arc::new(self.scope_schema_url.finish()));
        Ok(())
    }
}

/// The parts of a `Resource{Spans,Logs}` (field numbers are the same for both).
pub struct ResourceParts<'a> {
    pub resource: Option<&'a [u8]>,
    pub scopes: Vec<&'a [u8]>,
    pub schema_url: &'a str,
}

impl<'a> ResourceParts<'a> {
    pub fn parse(b: &'a [u8]) -> Result<Self, WireError> {
        let mut out = ResourceParts {
            resource: None,
            scopes: Vec::new(),
            schema_url: "",
        };
        for f in Reader::new(b) {
            match f? {
                (1, Field::Bytes(r)) => out.resource = Some(r),
                (2, Field::Bytes(s)) => out.scopes.push(s),
                (3, Field::Bytes(u)) => out.schema_url = text(u)?,
                _ => {}
            }
        }
        Ok(out)
    }
}

/// The parts of a `Scope{Spans,Logs}`: scope, items, schema url.
pub struct ScopeParts<'a> {
    pub scope: Option<&'a [u8]>,
    pub items: Vec<&'a [u8]>,
    pub schema_url: &'a str,
}

impl<'a> ScopeParts<'a> {
    pub fn parse(b: &'a [u8]) -> Result<Self, WireError> {
        let mut out = ScopeParts {
            scope: None,
            items: Vec::new(),
            schema_url: "",
        };
        for f in Reader::new(b) {
            match f? {
                (1, Field::Bytes(s)) => out.scope = Some(s),
                (2, Field::Bytes(i)) => out.items.push(i),
                (3, Field::Bytes(u)) => out.schema_url = text(u)?,
                _ => {}
            }
        }
        Ok(out)
    }
}
