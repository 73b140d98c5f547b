//! The archive's table schemas, one per signal: `spans` (one row per span) and
//! `logs` (one row per log record). Column names follow the OpenTelemetry
//! Collector's ClickHouse exporter (`otel_traces`, `otel_logs`: CamelCase), so
//! queries move between the two. docs/archive-schema.md is the reference;
//! [`SCHEMA_VERSION`] changes whenever a column is renamed, retyped or removed
//! (adding a column bumps it too, so readers can tell files apart).
//!
//! Every file carries the version in its Parquet key-value metadata under
//! [`SCHEMA_VERSION_KEY`], and its signal under [`SIGNAL_KEY`].

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use weir_pipeline::Signal;

/// The schema version written into every file.
pub const SCHEMA_VERSION: &str = "2";
/// Parquet key-value metadata key holding [`SCHEMA_VERSION`].
pub const SCHEMA_VERSION_KEY: &str = "weir.archive.schema_version";
/// Parquet key-value metadata key holding the signal (`traces` or `logs`).
pub const SIGNAL_KEY: &str = "weir.archive.signal";

/// Trace ids are 16 bytes, span ids 8 (W3C Trace Context).
pub const TRACE_ID_LEN: i32 = 16;
pub const SPAN_ID_LEN: i32 = 8;

/// Nanoseconds since the Unix epoch, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// The entries of an attribute map: `key_value { key, value }`, as the Parquet
/// spec names a MAP's repeated group.
pub fn map_entries() -> Arc<Field> {
    Arc::new(Field::new(
        "key_value",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Utf8, true),
        ])),
        false,
    ))
}

/// An attribute map column: string keys, values rendered as strings (see
/// `convert::render`), in the order they were sent.
pub fn attributes_field(name: &str) -> Field {
    Field::new(name, DataType::Map(map_entries(), false), false)
}

pub fn event_fields() -> Fields {
    Fields::from(vec![
        Field::new("Timestamp", timestamp_type(), false),
        Field::new("Name", DataType::Utf8, false),
        attributes_field("Attributes"),
        Field::new("DroppedAttributesCount", DataType::UInt32, false),
    ])
}

pub fn link_fields() -> Fields {
    Fields::from(vec![
        Field::new("TraceId", DataType::FixedSizeBinary(TRACE_ID_LEN), false),
        Field::new("SpanId", DataType::FixedSizeBinary(SPAN_ID_LEN), false),
        Field::new("TraceState", DataType::Utf8, false),
        Field::new("Flags", DataType::UInt32, false),
        attributes_field("Attributes"),
        Field::new("DroppedAttributesCount", DataType::UInt32, false),
    ])
}

/// A list item field named `element`, as the Parquet spec names a LIST's item.
pub fn list_item(fields: Fields) -> Arc<Field> {
    Arc::new(Field::new("element", DataType::Struct(fields), false))
}

/// The resource and scope columns both signals end with.
fn resource_and_scope() -> Vec<Field> {
    vec![
        Field::new("ServiceName", DataType::Utf8, true),
        attributes_field("ResourceAttributes"),
        Field::new("ResourceSchemaUrl", DataType::Utf8, false),
        Field::new("ScopeName", DataType::Utf8, false),
        Field::new("ScopeVersion", DataType::Utf8, false),
        attributes_field("ScopeAttributes"),
        Field::new("ScopeSchemaUrl", DataType::Utf8, false),
    ]
}

static SPANS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new("Timestamp", timestamp_type(), false),
        // End time = Timestamp + Duration (exactly: both come from u64 nanoseconds
        // clamped to i64). Version 1 also had it as `EndTimestamp`: 4–5 bytes a
        // span for a column that says nothing new.
        Field::new("Duration", DataType::Int64, false),
        Field::new("TraceId", DataType::FixedSizeBinary(TRACE_ID_LEN), false),
        Field::new("SpanId", DataType::FixedSizeBinary(SPAN_ID_LEN), false),
        Field::new("ParentSpanId", DataType::FixedSizeBinary(SPAN_ID_LEN), true),
        Field::new("TraceState", DataType::Utf8, false),
        Field::new("Flags", DataType::UInt32, false),
        Field::new("SpanName", DataType::Utf8, false),
        Field::new("SpanKind", DataType::Utf8, false),
        Field::new("StatusCode", DataType::Utf8, false),
        Field::new("StatusMessage", DataType::Utf8, false),
        attributes_field("SpanAttributes"),
        Field::new("Events", DataType::List(list_item(event_fields())), false),
        Field::new("Links", DataType::List(list_item(link_fields())), false),
        Field::new("DroppedAttributesCount", DataType::UInt32, false),
        Field::new("DroppedEventsCount", DataType::UInt32, false),
        Field::new("DroppedLinksCount", DataType::UInt32, false),
    ];
    fields.extend(resource_and_scope());
    Arc::new(Schema::new(fields))
});

static LOGS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new("Timestamp", timestamp_type(), true),
        Field::new("ObservedTimestamp", timestamp_type(), true),
        Field::new("SeverityNumber", DataType::Int32, false),
        Field::new("SeverityText", DataType::Utf8, false),
        Field::new("Body", DataType::Utf8, true),
        Field::new("EventName", DataType::Utf8, false),
        attributes_field("LogAttributes"),
        Field::new("TraceId", DataType::FixedSizeBinary(TRACE_ID_LEN), true),
        Field::new("SpanId", DataType::FixedSizeBinary(SPAN_ID_LEN), true),
        Field::new("TraceFlags", DataType::UInt32, false),
        Field::new("DroppedAttributesCount", DataType::UInt32, false),
    ];
    fields.extend(resource_and_scope());
    Arc::new(Schema::new(fields))
});

/// One row per span.
pub fn spans() -> SchemaRef {
    SPANS.clone()
}

/// One row per log record.
pub fn logs() -> SchemaRef {
    LOGS.clone()
}

/// The schema of an archived signal; `None` for metrics, which the archive does not take.
pub fn for_signal(signal: Signal) -> Option<SchemaRef> {
    match signal {
        Signal::Traces => Some(spans()),
        Signal::Logs => Some(logs()),
        Signal::Metrics => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &Schema) -> Vec<&str> {
        s.fields().iter().map(|f| f.name().as_str()).collect()
    }

    /// The documented column list (docs/archive-schema.md): changing it needs a new
    /// SCHEMA_VERSION and a doc update.
    #[test]
    fn spans_columns_are_stable() {
        assert_eq!(
            names(&spans()),
            [
                "Timestamp",
                "Duration",
                "TraceId",
                "SpanId",
                "ParentSpanId",
                "TraceState",
                "Flags",
                "SpanName",
                "SpanKind",
                "StatusCode",
                "StatusMessage",
                "SpanAttributes",
                "Events",
                "Links",
                "DroppedAttributesCount",
                "DroppedEventsCount",
                "DroppedLinksCount",
                "ServiceName",
                "ResourceAttributes",
                "ResourceSchemaUrl",
                "ScopeName",
                "ScopeVersion",
                "ScopeAttributes",
                "ScopeSchemaUrl",
            ]
        );
        assert_eq!(SCHEMA_VERSION, "2");
    }

    #[test]
    fn logs_columns_are_stable() {
        assert_eq!(
            names(&logs()),
            [
                "Timestamp",
                "ObservedTimestamp",
                "SeverityNumber",
                "SeverityText",
                "Body",
                "EventName",
                "LogAttributes",
                "TraceId",
                "SpanId",
                "TraceFlags",
                "DroppedAttributesCount",
                "ServiceName",
                "ResourceAttributes",
                "ResourceSchemaUrl",
                "ScopeName",
                "ScopeVersion",
                "ScopeAttributes",
                "ScopeSchemaUrl",
            ]
        );
    }

    #[test]
    fn ids_are_fixed_size_and_times_are_utc_nanos() {
        let s = spans();
        let ty = |n: &str| s.field_with_name(n).expect("column").data_type().clone();
        assert_eq!(ty("TraceId"), DataType::FixedSizeBinary(16));
        assert_eq!(ty("SpanId"), DataType::FixedSizeBinary(8));
        assert!(s.field_with_name("ParentSpanId").expect("column").is_nullable());
        assert_eq!(ty("Timestamp"), timestamp_type());
        assert!(matches!(ty("SpanAttributes"), DataType::Map(..)));
        assert!(matches!(ty("Events"), DataType::List(..)));
        assert!(for_signal(Signal::Metrics).is_none());
    }
}
