//! The exporter end to end, in process: local directory and in-memory object store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use prost::Message;
use weir_pipeline::config::{ByteSize, HumanDuration};
use weir_pipeline::{Batch, ExportError, Exporter, Metrics, Signal};

use crate::destination::Destination;
use crate::{ParquetArchive, ParquetExporterConfig, schema};

/// 2025-01-02T03:04:05Z in nanoseconds.
const T0: u64 = 1_735_787_045_000_000_000;
const HOUR: u64 = 3_600_000_000_000;

fn kv(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn spans_batch(n: usize, service: &str, start: u64) -> Batch {
    let spans = (0..n)
        .map(|i| Span {
            trace_id: rand::random::<[u8; 16]>().to_vec(),
            span_id: rand::random::<[u8; 8]>().to_vec(),
            name: format!("op-{i}"),
            start_time_unix_nano: start + i as u64,
            end_time_unix_nano: start + i as u64 + 1000,
            attributes: vec![kv("http.route", "/api/items"), kv("i", &i.to_string())],
            ..Default::default()
        })
        .collect();
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    };
    Batch::new(Signal::Traces, Bytes::from(req.encode_to_vec()), n)
}

fn logs_batch(n: usize) -> Batch {
    let records = (0..n)
        .map(|i| LogRecord {
            time_unix_nano: T0 + i as u64,
            severity_text: "INFO".into(),
            body: Some(AnyValue {
                value: Some(Value::StringValue(format!("line {i}"))),
            }),
            ..Default::default()
        })
        .collect();
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "svc")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    };
    Batch::new(Signal::Logs, Bytes::from(req.encode_to_vec()), n)
}

/// Every file under `root`, relative, sorted.
fn files(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(
                    p.strip_prefix(root)
                        .expect("prefix")
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn visible(root: &Path) -> Vec<String> {
    files(root)
        .into_iter()
        .filter(|f| f.ends_with(".parquet"))
        .collect()
}

fn read(bytes: Bytes) -> (Vec<RecordBatch>, Option<String>) {
    let b = ParquetRecordBatchReaderBuilder::try_new(bytes).expect("a valid parquet file");
    let version = b
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|e| e.key == schema::SCHEMA_VERSION_KEY).cloned())
        .and_then(|e| e.value);
    let batches = b
        .build()
        .expect("reader")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows");
    (batches, version)
}

fn rows_in(root: &Path) -> usize {
    visible(root)
        .iter()
        .map(|f| {
            let bytes = Bytes::from(std::fs::read(root.join(f)).expect("read"));
            read(bytes).0.iter().map(RecordBatch::num_rows).sum::<usize>()
        })
        .sum()
}

fn config(root: &Path) -> ParquetExporterConfig {
    ParquetExporterConfig::local(root)
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_is_hidden_while_open_and_visible_after_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = Metrics::new();
    let archive = ParquetArchive::new("archive", &config(dir.path()), &metrics).expect("archive");
    let outcome = archive
        .export(&spans_batch(10, "checkout", T0))
        .await
        .expect("export");
    assert_eq!(outcome.rejected, 0);
    let all = files(dir.path());
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(
        all[0].starts_with("signal=traces/date=2025-01-02/hour=03/.part-"),
        "{all:?}"
    );
    assert!(all[0].ends_with(".parquet.tmp"), "{all:?}");
    assert!(visible(dir.path()).is_empty());

    archive.shutdown().await;
    let done = visible(dir.path());
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(files(dir.path()), done, "no temporary file left");
    let name = done[0].rsplit('/').next().unwrap_or_default();
    assert!(name.starts_with("part-2"), "{name}");
    assert!(name.contains(archive.instance()), "{name}");
    let (batches, version) = read(Bytes::from(
        std::fs::read(dir.path().join(&done[0])).expect("read"),
    ));
    assert_eq!(version.as_deref(), Some(schema::SCHEMA_VERSION));
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 10);

    let text = metrics.encode();
    for line in [
        "weir_archive_rows_written_total{exporter=\"archive\",signal=\"traces\"} 10",
        "weir_archive_files_finished_total{exporter=\"archive\",signal=\"traces\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
    let err = archive
        .export(&spans_batch(1, "x", T0))
        .await
        .expect_err("closed");
    assert!(matches!(err, ExportError::Retryable { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolls_by_rows_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.max_rows = 5;
    let archive = ParquetArchive::new("a", &c, &Metrics::new()).expect("archive");
    archive.export(&spans_batch(12, "s", T0)).await.expect("export");
    assert_eq!(visible(dir.path()).len(), 2, "two full files are visible at once");
    archive.shutdown().await;
    let done = visible(dir.path());
    assert_eq!(done.len(), 3);
    let mut counts: Vec<usize> = done
        .iter()
        .map(|f| {
            read(Bytes::from(std::fs::read(dir.path().join(f)).expect("read")))
                .0
                .iter()
                .map(RecordBatch::num_rows)
                .sum()
        })
        .collect();
    counts.sort();
    assert_eq!(counts, [2, 5, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolls_by_age_without_new_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = Metrics::new();
    let mut c = config(dir.path());
    c.max_age = HumanDuration::from_millis(300);
    let archive = ParquetArchive::new("aged", &c, &metrics).expect("archive");
    archive.export(&spans_batch(3, "s", T0)).await.expect("export");
    assert!(visible(dir.path()).is_empty());
    assert!(
        metrics
            .encode()
            .contains("weir_archive_oldest_unflushed_age_seconds{exporter=\"aged\",signal=\"traces\"} 0.")
    );
    wait_for("the aged file", || visible(dir.path()).len() == 1).await;
    assert_eq!(rows_in(dir.path()), 3);
    wait_for("the gauge to drop", || {
        metrics
            .encode()
            .contains("weir_archive_oldest_unflushed_age_seconds{exporter=\"aged\",signal=\"traces\"} 0.0\n")
    })
    .await;
    archive.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolls_by_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.max_bytes = ByteSize(4096);
    c.row_group_rows = 50;
    let archive = ParquetArchive::new("b", &c, &Metrics::new()).expect("archive");
    for _ in 0..10 {
        archive.export(&spans_batch(100, "s", T0)).await.expect("export");
    }
    // Each 100-span export crosses 4 KiB, so each one rolls its file over.
    assert_eq!(visible(dir.path()).len(), 10);
    archive.shutdown().await;
    assert_eq!(visible(dir.path()).len(), 10);
    assert_eq!(rows_in(dir.path()), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_by_hour_signal_and_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.partition_by_service = true;
    let archive = ParquetArchive::new("p", &c, &Metrics::new()).expect("archive");
    archive
        .export(&spans_batch(2, "checkout", T0))
        .await
        .expect("export");
    archive
        .export(&spans_batch(2, "cart api", T0 + HOUR))
        .await
        .expect("export");
    archive.export(&logs_batch(3)).await.expect("export");
    archive.shutdown().await;
    let dirs: Vec<String> = visible(dir.path())
        .iter()
        .map(|f| f.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default())
        .collect();
    assert_eq!(
        dirs,
        [
            "signal=logs/date=2025-01-02/hour=03/service=svc",
            "signal=traces/date=2025-01-02/hour=03/service=checkout",
            "signal=traces/date=2025-01-02/hour=04/service=cart%20api",
        ]
    );
    assert_eq!(rows_in(dir.path()), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_refused_permanently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = ParquetArchive::new("m", &config(dir.path()), &Metrics::new()).expect("archive");
    let err = archive
        .export(&Batch::new(Signal::Metrics, Bytes::new(), 1))
        .await
        .expect_err("metrics");
    let ExportError::Permanent { message } = err else {
        panic!("expected a permanent error, got {err:?}")
    };
    assert!(message.contains("traces and logs only"), "{message}");
    let err = archive
        .export(&Batch::new(Signal::Traces, Bytes::from_static(b"\xff\xff"), 1))
        .await
        .expect_err("garbage");
    assert!(matches!(err, ExportError::Permanent { .. }), "{err:?}");
    archive.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_ids_are_reported_as_partial_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = ParquetArchive::new("ids", &config(dir.path()), &Metrics::new()).expect("archive");
    let mut req = ExportTraceServiceRequest::decode(spans_batch(3, "s", T0).payload).expect("decode");
    req.resource_spans[0].scope_spans[0].spans[1].span_id = vec![1, 2, 3];
    let batch = Batch::new(Signal::Traces, Bytes::from(req.encode_to_vec()), 3);
    let outcome = archive.export(&batch).await.expect("export");
    assert_eq!(outcome.rejected, 1);
    assert!(
        outcome
            .message
            .unwrap_or_default()
            .contains("1 spans not archived")
    );
    archive.shutdown().await;
    assert_eq!(rows_in(dir.path()), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_temporary_files_are_removed_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let part = dir.path().join("signal=traces/date=2025-01-02/hour=03");
    std::fs::create_dir_all(&part).expect("mkdir");
    let stale = part.join(".part-20250102T030405Z-0123456789abcdef-000001.parquet.tmp");
    std::fs::write(&stale, b"PAR1 half a file").expect("write");
    let archive = ParquetArchive::new("s", &config(dir.path()), &Metrics::new()).expect("archive");
    assert!(!stale.exists());
    // A second archive in the same process keeps the first one's open file.
    archive.export(&spans_batch(1, "s", T0)).await.expect("export");
    let other = ParquetArchive::new("s2", &config(dir.path()), &Metrics::new()).expect("archive");
    assert_eq!(files(dir.path()).len(), 1);
    other.shutdown().await;
    archive.shutdown().await;
    assert_eq!(visible(dir.path()).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_objects_appear_only_when_complete() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let metrics = Metrics::new();
    let c = ParquetExporterConfig {
        path: None,
        url: Some("s3://bucket/archive".into()),
        ..config(&PathBuf::new())
    };
    let archive =
        ParquetArchive::with_destination("s3", &c, Destination::store(store.clone(), "archive/"), &metrics)
            .expect("archive");
    archive.export(&spans_batch(20, "s", T0)).await.expect("export");
    archive.export(&logs_batch(5)).await.expect("export");
    let listed = || async {
        use futures::TryStreamExt as _;
        let mut v: Vec<String> = store
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .expect("list");
        v.sort();
        v
    };
    assert!(
        listed().await.is_empty(),
        "nothing visible before the files are finished"
    );
    archive.shutdown().await;
    let objects = listed().await;
    assert_eq!(objects.len(), 2, "{objects:?}");
    assert!(objects[0].starts_with("archive/signal=logs/date=2025-01-02/hour=03/part-"));
    assert!(objects[1].starts_with("archive/signal=traces/date=2025-01-02/hour=03/part-"));
    let mut rows = 0;
    for o in &objects {
        let bytes = store
            .get(&o.as_str().into())
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        let (batches, version) = read(bytes);
        assert_eq!(version.as_deref(), Some(schema::SCHEMA_VERSION));
        rows += batches.iter().map(RecordBatch::num_rows).sum::<usize>();
    }
    assert_eq!(rows, 25);
    assert!(
        metrics
            .encode()
            .contains("weir_archive_files_finished_total{exporter=\"s3\",signal=\"logs\"} 1")
    );
}

/// A batch whose last span (in sort order) has an attribute key that is not
/// UTF-8: found only when its chunk is built, after earlier chunks were stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_tail_is_a_partial_success() {
    let n = crate::CHUNK_ROWS + 76;
    let spans = (0..n)
        .map(|i| Span {
            trace_id: (i as u128 + 1).to_be_bytes().to_vec(),
            span_id: rand::random::<[u8; 8]>().to_vec(),
            start_time_unix_nano: T0,
            end_time_unix_nano: T0 + 1000,
            attributes: vec![kv(if i == n - 1 { "BADKEY" } else { "k" }, "v")],
            ..Default::default()
        })
        .collect();
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut payload = req.encode_to_vec();
    let at = payload
        .windows(6)
        .position(|w| w == b"BADKEY")
        .expect("the key is in the payload");
    payload[at] = 0xff;
    let batch = Batch::new(Signal::Traces, Bytes::from(payload), n);

    let dir = tempfile::tempdir().expect("tempdir");
    let archive = ParquetArchive::new("archive", &config(dir.path()), &Metrics::new()).expect("archive");
    let outcome = archive.export(&batch).await.expect("a partial success");
    assert_eq!(outcome.rejected, 76);
    let message = outcome.message.unwrap_or_default();
    assert!(message.contains("76 spans not archived"), "{message}");
    archive.shutdown().await;
    assert_eq!(rows_in(dir.path()), crate::CHUNK_ROWS);
}
