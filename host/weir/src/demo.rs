//! `weir run --demo`: a tiny built-in client that sends spans, logs and metrics
//! to weir's own gRPC receiver once a second, so a newcomer sees data flow —
//! and, with the embedded demo config, what the reference plugins do to it
//! (an email and a card number to mask, a health check to sample out, a
//! warning to route).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::uri::PathAndQuery;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use rand::Rng;
use tokio_util::sync::CancellationToken;
use weir_otlp::codec::RawCodec;
use weir_otlp::grpc_path;
use weir_pipeline::Signal;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", "weir-demo"),
            kv("deployment.environment", "local"),
        ],
        ..Default::default()
    })
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

fn requests(tick: u64) -> [(Signal, Bytes); 3] {
    let mut rng = rand::rng();
    let trace_id: [u8; 16] = rng.random();
    let now = now_nanos();
    let spans = ["GET /checkout", "SELECT orders", "charge card", "GET /health"]
        .iter()
        .enumerate()
        .map(|(i, name)| Span {
            trace_id: trace_id.to_vec(),
            span_id: rng.random::<[u8; 8]>().to_vec(),
            name: (*name).into(),
            kind: if i == 0 { 2 } else { 3 },
            start_time_unix_nano: now - 5_000_000,
            end_time_unix_nano: now,
            attributes: vec![
                kv("demo.tick", &tick.to_string()),
                kv("user.email", "alice@example.com"),
            ],
            ..Default::default()
        })
        .collect();
    let traces = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    LogRecord {
                        time_unix_nano: now,
                        severity_number: 9,
                        severity_text: "INFO".into(),
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(format!(
                                "order {tick} paid with card 4111 1111 1111 1111"
                            ))),
                        }),
                        trace_id: trace_id.to_vec(),
                        ..Default::default()
                    },
                    LogRecord {
                        time_unix_nano: now,
                        severity_number: if tick.is_multiple_of(3) { 13 } else { 9 },
                        severity_text: if tick.is_multiple_of(3) { "WARN" } else { "INFO" }.into(),
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(format!(
                                "stock for order {tick} is running low"
                            ))),
                        }),
                        trace_id: trace_id.to_vec(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let metrics = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "demo.orders".into(),
                    unit: "1".into(),
                    data: Some(metric::Data::Sum(Sum {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: now,
                            value: Some(number_data_point::Value::AsInt(i64::try_from(tick).unwrap_or(0))),
                            ..Default::default()
                        }],
                        aggregation_temporality: 2,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    [
        (Signal::Traces, traces.encode_to_vec().into()),
        (Signal::Logs, logs.encode_to_vec().into()),
        (Signal::Metrics, metrics.encode_to_vec().into()),
    ]
}

pub async fn send_forever(mut addr: SocketAddr, stop: CancellationToken) {
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://{addr}")) else {
        return;
    };
    let channel = endpoint.connect_lazy();
    let mut tick = 0u64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        tick += 1;
        for (signal, body) in requests(tick) {
            let mut client = tonic::client::Grpc::new(channel.clone());
            if client.ready().await.is_err() {
                continue;
            }
            let path = PathAndQuery::from_static(grpc_path(signal));
            if let Err(status) = client.unary(tonic::Request::new(body), path, RawCodec).await
                && status.code() != tonic::Code::Unimplemented
            {
                tracing::warn!(%signal, %status, "demo export refused");
            }
        }
    }
}
