//! What the receivers pay per request before a batch is accepted: `count_items`
//! (framing, ids, UTF-8 and nesting checks) on a realistic traces request.
//!
//! ```text
//! cargo bench -p weir-otlp --bench wire
//! ```
//!
//! The request is shaped like weir's load generator's: 100 spans of ~700 bytes,
//! each with 10 string attributes, under one resource with 7 attributes. Divide
//! the reported time by 100 for ns/span (criterion also prints spans/s).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use weir_pipeline::Signal;

const SPANS: usize = 100;

fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// A deterministic stand-in for random ids (xorshift), so runs compare.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn request() -> Vec<u8> {
    const ROUTES: [&str; 4] = [
        "/api/v1/users/{id}",
        "/api/v1/orders/{id}",
        "/api/v1/cart",
        "/health",
    ];
    const METHODS: [&str; 3] = ["GET", "POST", "PUT"];
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let resource = Resource {
        attributes: vec![
            kv("service.name", "checkout-service"),
            kv("service.version", "1.4.2"),
            kv("service.instance.id", "5f0c2a8e-3b7d-4e59-9a61-0c2f4b8d7e13"),
            kv("host.name", "ip-10-42-7-113.ec2.internal"),
            kv("deployment.environment.name", "production"),
            kv("telemetry.sdk.language", "rust"),
            kv("telemetry.sdk.name", "opentelemetry"),
        ],
        ..Default::default()
    };
    let spans = (0..SPANS)
        .map(|i| {
            let r = next(&mut s);
            let method = METHODS[(r % 3) as usize];
            let route = ROUTES[((r >> 8) % 4) as usize];
            let start = 1_700_000_000_000_000_000 + (r >> 20);
            Span {
                trace_id: [next(&mut s).to_le_bytes(), next(&mut s).to_le_bytes()].concat(),
                span_id: next(&mut s).to_le_bytes().to_vec(),
                parent_span_id: if i % 10 == 0 {
                    Vec::new()
                } else {
                    next(&mut s).to_le_bytes().to_vec()
                },
                flags: 0x301,
                name: format!("{method} {route}"),
                kind: span::SpanKind::Server as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 1_234_567,
                attributes: vec![
                    kv("http.request.method", method),
                    kv("http.route", route),
                    kv(
                        "url.full",
                        format!(
                            "https://shop-frontend.prod.example.com/api/v1/users/{:08x}?page=3&limit=50&sort=created_at&order=desc&currency=EUR&locale=en-US",
                            r as u32
                        ),
                    ),
                    kv("url.scheme", "https"),
                    kv("server.address", "shop-frontend.prod.example.com"),
                    kv("network.protocol.version", "1.1"),
                    kv("http.response.status_code", "200"),
                    kv(
                        "user_agent.original",
                        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
                    ),
                    kv("client.address", format!("10.0.{}.{}", (r >> 30) % 256, (r >> 40) % 256)),
                    kv("session.id", format!("{:016x}{:016x}", next(&mut s), next(&mut s))),
                ],
                status: Some(Status::default()),
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "opentelemetry-http".into(),
                    version: "0.31.0".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
        }],
    }
    .encode_to_vec()
}

fn count_items(c: &mut Criterion) {
    let req = request();
    assert_eq!(weir_otlp::wire::count_items(Signal::Traces, &req), Ok(SPANS));
    eprintln!("request: {} bytes, {} bytes/span", req.len(), req.len() / SPANS);
    let mut g = c.benchmark_group("count_items");
    g.throughput(Throughput::Elements(SPANS as u64));
    g.bench_function("traces_100_spans", |b| {
        b.iter(|| weir_otlp::wire::count_items(Signal::Traces, std::hint::black_box(&req)))
    });
    g.finish();
}

criterion_group!(benches, count_items);
criterion_main!(benches);
