//! The load generator's span shape (bench/loadgen): ~700 bytes of OTLP per
//! span, ten string attributes with random ids inside URLs and user ids (so
//! their values barely compress), traces of ten spans (a server root with nine
//! children), one service per request, seven resource attributes.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span, status};
use rand::Rng;

use crate::values::{hex, kv};

/// 2025-01-02T03:30:00Z: every generated span starts in the minute after it.
pub const T0: u64 = 1_735_788_600_000_000_000;

const SERVICES: &[&str] = &["checkout", "cart", "payment", "inventory", "shipping", "frontend"];
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE"];
const ROUTES: &[&str] = &[
    "/api/v1/orders/{order_id}/items",
    "/api/v1/carts/{cart_id}",
    "/api/v1/payments/{payment_id}/capture",
    "/api/v1/products/{sku}/stock",
    "/api/v1/shipments/{shipment_id}/labels",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "okhttp/4.12.0",
    "python-requests/2.32.3",
];

/// Request number `index` of `spans` spans; the service is `index`'s turn.
/// Spans start in the minute after [`T0`].
pub fn request(rng: &mut impl Rng, index: usize, spans: usize) -> ExportTraceServiceRequest {
    request_starting(rng, index, spans, |offset| T0 + offset)
}

/// [`request`] with each span's start computed from a random offset of 1 ms
/// to 60 s (the load generator starts spans that long before now).
pub fn request_starting(
    rng: &mut impl Rng,
    index: usize,
    spans: usize,
    start: impl Fn(u64) -> u64,
) -> ExportTraceServiceRequest {
    let service = SERVICES[index % SERVICES.len()];
    let instance: [u8; 16] = rng.random();
    let resource = Resource {
        attributes: vec![
            kv("service.name", format!("{service}-service")),
            kv("service.version", format!("1.{}.{}", index % 7, index % 13)),
            kv("service.instance.id", hex(&instance)),
            kv(
                "host.name",
                format!("ip-10-42-{}-{}.ec2.internal", index % 16, index % 250),
            ),
            kv("deployment.environment.name", "production"),
            kv("telemetry.sdk.language", "rust"),
            kv("telemetry.sdk.name", "opentelemetry"),
        ],
        ..Default::default()
    };
    let mut trace_id = [0u8; 16];
    let mut root_id = [0u8; 8];
    let spans = (0..spans)
        .map(|i| {
            let is_root = i % 10 == 0;
            if is_root {
                trace_id = rng.random();
                root_id = rng.random();
            }
            let span_id: [u8; 8] = if is_root { root_id } else { rng.random() };
            let method = METHODS[rng.random_range(0..METHODS.len())];
            let route = ROUTES[rng.random_range(0..ROUTES.len())];
            let id: u32 = rng.random();
            let path = route.split('{').next().unwrap_or(route);
            let start = start(rng.random_range(1_000_000..60_000_000_000));
            let status_code = if rng.random_ratio(1, 50) { "503" } else { "200" };
            Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                parent_span_id: if is_root { Vec::new() } else { root_id.to_vec() },
                flags: 0x301,
                name: format!("{method} {route}"),
                kind: if is_root {
                    span::SpanKind::Server
                } else if rng.random_bool(0.5) {
                    span::SpanKind::Client
                } else {
                    span::SpanKind::Internal
                } as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start + rng.random_range(50_000..900_000_000),
                attributes: vec![
                    kv("http.request.method", method),
                    kv("http.route", route),
                    kv(
                        "url.full",
                        format!(
                            "https://shop-frontend.prod.example.com{path}{id:08x}?page={}&limit=50&sort=created_at&order=desc&currency=EUR&locale=en-US",
                            id % 9
                        ),
                    ),
                    kv("url.scheme", "https"),
                    kv("server.address", "shop-frontend.prod.example.com"),
                    kv("network.peer.address", format!("10.42.{}.{}", id % 256, (id >> 8) % 256)),
                    kv("user_agent.original", AGENTS[rng.random_range(0..AGENTS.len())]),
                    kv("http.response.status_code", status_code),
                    kv("code.function.name", "com.example.shop.api.RequestHandler.handle"),
                    kv("enduser.id", format!("user-{:08x}-{:08x}", id, id.rotate_left(13))),
                ],
                status: Some(Status {
                    code: if status_code == "200" {
                        status::StatusCode::Unset
                    } else {
                        status::StatusCode::Error
                    } as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "io.opentelemetry.instrumentation.http".to_owned(),
                    version: "2.6.0".to_owned(),
                    ..Default::default()
                }),
                spans,
                schema_url: "https://opentelemetry.io/schemas/1.26.0".to_owned(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.26.0".to_owned(),
        }],
    }
}
