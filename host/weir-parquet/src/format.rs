//! The Parquet encoding of archive files: compression, row groups, per-column
//! encodings, dictionaries and statistics, and the key-value metadata.

use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;
use weir_pipeline::Signal;

use crate::schema::{SCHEMA_VERSION, SCHEMA_VERSION_KEY, SIGNAL_KEY};
use crate::writer::FileSettings;

/// Metadata key naming the weir instance that wrote a file.
pub const INSTANCE_KEY: &str = "weir.archive.instance";

/// Data pages of up to 2 MiB (arrow-rs's default is 1 MiB): zstd compresses
/// each page alone, and the attribute-value columns gain from the longer
/// history (mesh spans 36.1 bytes/span against 36.9; 4 MiB gains 0.3 more at
/// twice the writer memory). docs/benchmarks.md, section 3.
pub const DATA_PAGE_BYTES: usize = 2 << 20;

/// Writer properties of one signal's files: zstd, row groups of
/// `row_group_rows`, the schema version in the key-value metadata, and no
/// dictionaries for columns whose values are (nearly) all distinct.
pub fn properties(signal: Signal, s: &FileSettings, instance: &str) -> WriterProperties {
    let level = ZstdLevel::try_new(s.zstd_level).unwrap_or_default();
    let mut b = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::ZSTD(level))
        .set_data_page_size_limit(DATA_PAGE_BYTES)
        .set_max_row_group_row_count(Some(s.row_group_rows.max(1)))
        .set_key_value_metadata(Some(vec![
            KeyValue::new(SCHEMA_VERSION_KEY.to_string(), SCHEMA_VERSION.to_string()),
            KeyValue::new(SIGNAL_KEY.to_string(), signal.as_str().to_string()),
            KeyValue::new(INSTANCE_KEY.to_string(), instance.to_string()),
        ]));
    let unique: &[&str] = match signal {
        Signal::Traces => &["Timestamp", "Duration", "TraceId", "SpanId", "ParentSpanId"],
        _ => &["Timestamp", "ObservedTimestamp", "TraceId", "SpanId"],
    };
    for col in unique {
        let path = ColumnPath::from(*col);
        b = b.set_column_dictionary_enabled(path.clone(), false);
        if col.contains("Timestamp") || *col == "Duration" {
            b = b.set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
        }
    }
    // Attribute maps mix every key's values in one column: their min/max
    // statistics prune nothing and cost about a sixth of the encoding time, and
    // per-item values (ids, URLs) overflow a dictionary at once, so they go
    // straight to plain + zstd. Resource attributes keep their dictionary (one
    // value repeated per row).
    let maps: &[(&[&str], bool)] = match signal {
        Signal::Traces => &[
            (&["SpanAttributes"], true),
            (&["Events", "list", "element", "Attributes"], true),
            (&["Links", "list", "element", "Attributes"], true),
            (&["ResourceAttributes"], false),
            (&["ScopeAttributes"], false),
        ],
        _ => &[
            (&["LogAttributes"], true),
            (&["ResourceAttributes"], false),
            (&["ScopeAttributes"], false),
        ],
    };
    for (map, per_item) in maps {
        for leaf in ["key", "value"] {
            let mut path: Vec<String> = map.iter().map(|p| p.to_string()).collect();
            path.extend(["key_value".to_string(), leaf.to_string()]);
            let path = ColumnPath::new(path);
            b = b.set_column_statistics_enabled(path.clone(), EnabledStatistics::None);
            if *per_item && leaf == "value" {
                b = b.set_column_dictionary_enabled(path, false);
            }
        }
    }
    if signal == Signal::Logs {
        b = b
            .set_column_dictionary_enabled(ColumnPath::from("Body"), false)
            .set_column_statistics_enabled(ColumnPath::from("Body"), EnabledStatistics::None);
    }
    b.build()
}
