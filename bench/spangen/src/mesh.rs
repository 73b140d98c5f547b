//! Spans and logs shaped like a real service mesh (the OpenTelemetry demo's
//! shop, on Kubernetes): nine services with two to four pods each, every pod
//! with the resource attributes the Kubernetes and cloud detectors add.
//!
//! Traces enter at the frontend and go down the call graph: every handled
//! request is a SERVER span (HTTP or gRPC, semantic-convention attributes, a
//! route from a short list, a mostly-200 status) with a CLIENT child per call
//! (downstream gRPC and HTTP calls, SQL and Redis queries), the callee's SERVER
//! span the child of the caller's CLIENT span, errors propagating up.
//! Durations are log-normal around each operation's median. Each request is one
//! pod's export, as an SDK's batch processor sends it: the spans that pod
//! finished, in the order they ended, so one trace's spans are spread over the
//! requests of several pods.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span::Event, span::SpanKind, status::StatusCode,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::values::{hex, kv, kv_bool, kv_int};

/// 2025-01-02T03:30:00Z, where the mesh's clock starts.
pub const T0: u64 = 1_735_788_600_000_000_000;
const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.26.0";
const NAMESPACE: &str = "shop";

/// What a service's endpoint calls while it handles a request.
#[derive(Clone, Copy)]
enum Call {
    /// gRPC to (service, method).
    Grpc(&'static str, &'static str, &'static str),
    /// HTTP to (service, method, route).
    Http(&'static str, &'static str, &'static str),
    /// SQL: (operation, table, query).
    Sql(&'static str, &'static str, &'static str),
    /// Redis: (command, key prefix).
    Redis(&'static str, &'static str),
}

enum Inbound {
    Http(&'static str, &'static str),
    /// (gRPC service, method).
    Grpc(&'static str, &'static str),
}

struct Endpoint {
    inbound: Inbound,
    /// Relative frequency among the service's endpoints.
    weight: u32,
    /// Median time spent in the handler itself, in microseconds.
    median_us: f64,
    calls: &'static [Call],
}

struct ServiceSpec {
    name: &'static str,
    language: &'static str,
    runtime: (&'static str, &'static str),
    version: &'static str,
    pods: usize,
    port: i64,
    endpoints: Vec<Endpoint>,
    loggers: &'static [&'static str],
    messages: &'static [&'static str],
}

const PRODUCTS: &[&str] = &[
    "OLJCESPC7Z",
    "66VCHSJNUP",
    "1YMWWN1N4O",
    "L9ECAV7KIM",
    "2ZYFJ3GM2N",
    "0PUK6V6EV0",
    "LS4PSXUNUM",
    "9SIQT8TOJO",
    "6E92ZMYYFZ",
    "HQTGWGPNH4",
];

fn services() -> Vec<ServiceSpec> {
    use Call::*;
    let ep = |inbound, weight, median_us, calls| Endpoint {
        inbound,
        weight,
        median_us,
        calls,
    };
    vec![
        ServiceSpec {
            name: "frontend",
            language: "nodejs",
            runtime: ("nodejs", "20.18.1"),
            version: "1.12.0",
            pods: 4,
            port: 8080,
            endpoints: vec![
                ep(
                    Inbound::Http("GET", "/api/products/{productId}"),
                    30,
                    900.0,
                    &[
                        Grpc("product-catalog", "oteldemo.ProductCatalogService", "GetProduct"),
                        Grpc("currency", "oteldemo.CurrencyService", "Convert"),
                    ],
                ),
                ep(
                    Inbound::Http("GET", "/api/products"),
                    15,
                    1200.0,
                    &[Grpc(
                        "product-catalog",
                        "oteldemo.ProductCatalogService",
                        "ListProducts",
                    )],
                ),
                ep(
                    Inbound::Http("GET", "/api/cart"),
                    20,
                    700.0,
                    &[Grpc("cart", "oteldemo.CartService", "GetCart")],
                ),
                ep(
                    Inbound::Http("POST", "/api/cart"),
                    10,
                    800.0,
                    &[Grpc("cart", "oteldemo.CartService", "AddItem")],
                ),
                ep(
                    Inbound::Http("GET", "/api/data"),
                    15,
                    500.0,
                    &[Http("ad", "GET", "/api/ads")],
                ),
                ep(
                    Inbound::Http("POST", "/api/checkout"),
                    3,
                    1500.0,
                    &[Grpc("checkout", "oteldemo.CheckoutService", "PlaceOrder")],
                ),
            ],
            loggers: &["frontend:api", "frontend:server"],
            messages: &[
                "request handled route={route} status={status}",
                "product {product} viewed by session {session}",
            ],
        },
        ServiceSpec {
            name: "product-catalog",
            language: "go",
            runtime: ("go", "go1.22.7"),
            version: "1.12.0",
            pods: 3,
            port: 3550,
            endpoints: vec![
                ep(
                    Inbound::Grpc("oteldemo.ProductCatalogService", "GetProduct"),
                    60,
                    150.0,
                    &[Sql(
                        "SELECT",
                        "products",
                        "SELECT id, name, description, picture, price_units, price_nanos, categories FROM products WHERE id = $1",
                    )],
                ),
                ep(
                    Inbound::Grpc("oteldemo.ProductCatalogService", "ListProducts"),
                    30,
                    300.0,
                    &[Sql(
                        "SELECT",
                        "products",
                        "SELECT id, name, description, picture, price_units, price_nanos, categories FROM products ORDER BY id",
                    )],
                ),
            ],
            loggers: &["productcatalog"],
            messages: &[
                "loaded product {product}",
                "catalog cache refreshed: {count} products",
            ],
        },
        ServiceSpec {
            name: "cart",
            language: "dotnet",
            runtime: ("dotnet", "8.0.11"),
            version: "1.12.0",
            pods: 3,
            port: 7070,
            endpoints: vec![
                ep(
                    Inbound::Grpc("oteldemo.CartService", "GetCart"),
                    60,
                    120.0,
                    &[Redis("HGETALL", "cart")],
                ),
                ep(
                    Inbound::Grpc("oteldemo.CartService", "AddItem"),
                    30,
                    150.0,
                    &[Redis("HSET", "cart"), Redis("EXPIRE", "cart")],
                ),
                ep(
                    Inbound::Grpc("oteldemo.CartService", "EmptyCart"),
                    5,
                    100.0,
                    &[Redis("DEL", "cart")],
                ),
            ],
            loggers: &["cart.cartstore.ValkeyCartStore", "cart.services.CartService"],
            messages: &[
                "GetCartAsync called with userId={session}",
                "AddItemAsync called with userId={session}, productId={product}, quantity={count}",
            ],
        },
        ServiceSpec {
            name: "checkout",
            language: "go",
            runtime: ("go", "go1.22.7"),
            version: "1.12.0",
            pods: 2,
            port: 5050,
            endpoints: vec![ep(
                Inbound::Grpc("oteldemo.CheckoutService", "PlaceOrder"),
                1,
                2500.0,
                &[
                    Grpc("cart", "oteldemo.CartService", "GetCart"),
                    Grpc("currency", "oteldemo.CurrencyService", "Convert"),
                    Http("shipping", "POST", "/get-quote"),
                    Grpc("payment", "oteldemo.PaymentService", "Charge"),
                    Http("shipping", "POST", "/ship-order"),
                    Sql(
                        "INSERT",
                        "orders",
                        "INSERT INTO orders (id, user_id, shipping_tracking_id, total_units, total_nanos, currency) VALUES ($1, $2, $3, $4, $5, $6)",
                    ),
                    Grpc("cart", "oteldemo.CartService", "EmptyCart"),
                    Http("email", "POST", "/send_order_confirmation"),
                ],
            )],
            loggers: &["checkout"],
            messages: &[
                "payment went through (transaction_id: {order})",
                "order confirmation email sent to \"{session}@example.com\"",
            ],
        },
        ServiceSpec {
            name: "currency",
            language: "cpp",
            runtime: ("cpp", "13.2.0"),
            version: "1.12.0",
            pods: 2,
            port: 7001,
            endpoints: vec![ep(
                Inbound::Grpc("oteldemo.CurrencyService", "Convert"),
                1,
                60.0,
                &[],
            )],
            loggers: &["currency"],
            messages: &["conversion request successful: {count} USD to EUR"],
        },
        ServiceSpec {
            name: "payment",
            language: "nodejs",
            runtime: ("nodejs", "20.18.1"),
            version: "1.12.0",
            pods: 2,
            port: 50051,
            endpoints: vec![ep(
                Inbound::Grpc("oteldemo.PaymentService", "Charge"),
                1,
                400.0,
                &[],
            )],
            loggers: &["payment"],
            messages: &["Transaction complete. transactionId={order} cardType=visa lastFourDigits={count}"],
        },
        ServiceSpec {
            name: "shipping",
            language: "rust",
            runtime: ("rust", "1.82.0"),
            version: "1.12.0",
            pods: 2,
            port: 50050,
            endpoints: vec![
                ep(
                    Inbound::Http("POST", "/get-quote"),
                    1,
                    200.0,
                    &[Http("quote", "POST", "/getquote")],
                ),
                ep(Inbound::Http("POST", "/ship-order"), 1, 150.0, &[]),
            ],
            loggers: &["shipping::shipping_service"],
            messages: &["Sending Quote: {count}", "Tracking ID Created: {order}"],
        },
        ServiceSpec {
            name: "email",
            language: "ruby",
            runtime: ("ruby", "3.3.6"),
            version: "1.12.0",
            pods: 2,
            port: 6060,
            endpoints: vec![ep(
                Inbound::Http("POST", "/send_order_confirmation"),
                1,
                3000.0,
                &[],
            )],
            loggers: &["email"],
            messages: &["Order confirmation email sent to: {session}@example.com"],
        },
        ServiceSpec {
            name: "ad",
            language: "java",
            runtime: ("OpenJDK Runtime Environment", "21.0.5+11-LTS"),
            version: "1.12.0",
            pods: 2,
            port: 9555,
            endpoints: vec![ep(Inbound::Http("GET", "/api/ads"), 1, 250.0, &[])],
            loggers: &["oteldemo.AdService"],
            messages: &[
                "Targeted ad request received for [{product}]",
                "Non-targeted ad request received, preparing random response.",
            ],
        },
    ]
}

/// A standard normal sample (Box–Muller).
fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A log-normal duration in nanoseconds with the given median (µs) and sigma.
fn lognormal_ns(rng: &mut impl Rng, median_us: f64, sigma: f64) -> u64 {
    (median_us * 1000.0 * (sigma * normal(rng)).exp()).max(1000.0) as u64
}

fn letters(rng: &mut impl Rng, n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

fn uuid(rng: &mut impl Rng) -> String {
    let b: [u8; 16] = rng.random();
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

struct Pod {
    service: usize,
    resource: Resource,
}

fn pod(rng: &mut impl Rng, service: usize, spec: &ServiceSpec, replicaset: &str) -> Pod {
    let name = format!("{}-{replicaset}-{}", spec.name, letters(rng, 5));
    let node = format!(
        "ip-10-0-{}-{}.eu-west-1.compute.internal",
        rng.random_range(0..4) * 16,
        rng.random_range(2..250)
    );
    let ip = format!("10.0.{}.{}", rng.random_range(64..96), rng.random_range(2..250));
    let container: [u8; 32] = rng.random();
    let zone = ["eu-west-1a", "eu-west-1b", "eu-west-1c"][rng.random_range(0..3)];
    let attributes = vec![
        kv("service.name", spec.name),
        kv("service.namespace", "opentelemetry-demo"),
        kv("service.version", spec.version),
        kv("service.instance.id", uuid(rng)),
        kv("deployment.environment.name", "production"),
        kv("telemetry.sdk.name", "opentelemetry"),
        kv("telemetry.sdk.language", spec.language),
        kv("telemetry.sdk.version", "1.28.0"),
        kv("process.runtime.name", spec.runtime.0),
        kv("process.runtime.version", spec.runtime.1),
        kv("os.type", "linux"),
        kv("host.name", name.clone()),
        kv("host.arch", "amd64"),
        kv("cloud.provider", "aws"),
        kv("cloud.platform", "aws_eks"),
        kv("cloud.region", "eu-west-1"),
        kv("cloud.availability_zone", zone),
        kv("k8s.cluster.name", "prod-eu-west-1"),
        kv("k8s.namespace.name", NAMESPACE),
        kv("k8s.node.name", node),
        kv("k8s.deployment.name", spec.name),
        kv("k8s.replicaset.name", format!("{}-{replicaset}", spec.name)),
        kv("k8s.pod.name", name),
        kv("k8s.pod.uid", uuid(rng)),
        kv("k8s.pod.ip", ip),
        kv("container.name", spec.name),
        kv("container.id", hex(&container)),
        kv(
            "container.image.name",
            format!("ghcr.io/open-telemetry/demo-{}", spec.name),
        ),
        kv("container.image.tag", spec.version),
    ];
    Pod {
        service,
        resource: Resource {
            attributes,
            ..Default::default()
        },
    }
}

/// Instrumentation scopes by the kind of span they produce.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Http,
    Grpc,
    Sql,
    Redis,
}

impl Scope {
    fn name_version(self, language: &str) -> (&'static str, &'static str) {
        match (self, language) {
            (Scope::Http, "nodejs") => ("@opentelemetry/instrumentation-http", "0.55.0"),
            (Scope::Grpc, "nodejs") => ("@opentelemetry/instrumentation-grpc", "0.55.0"),
            (Scope::Http, "java") => ("io.opentelemetry.netty-4.1", "2.10.0"),
            (Scope::Grpc, "go") => (
                "go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc",
                "0.57.0",
            ),
            (Scope::Http, "go") => (
                "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
                "0.57.0",
            ),
            (Scope::Sql, _) => ("github.com/XSAM/otelsql", "0.35.0"),
            (Scope::Redis, _) => ("OpenTelemetry.Instrumentation.StackExchangeRedis", "1.0.0-rc9.15"),
            (Scope::Grpc, "dotnet") => ("OpenTelemetry.Instrumentation.AspNetCore", "1.9.0"),
            (Scope::Http, "rust") => ("actix-web-opentelemetry", "0.19.0"),
            (Scope::Http, "ruby") => ("OpenTelemetry::Instrumentation::Sinatra", "0.24.0"),
            (Scope::Grpc, _) => ("opentelemetry-grpc", "1.28.0"),
            (Scope::Http, _) => ("opentelemetry-http", "1.28.0"),
        }
    }
}

const STATUS_CODES: &[(i64, u32)] = &[(200, 930), (304, 20), (400, 10), (404, 25), (500, 10), (503, 5)];
const GRPC_CODES: &[(i64, u32)] = &[(0, 975), (5, 10), (13, 10), (14, 5)];

fn weighted(rng: &mut impl Rng, table: &[(i64, u32)]) -> i64 {
    let total: u32 = table.iter().map(|(_, w)| w).sum();
    let mut pick = rng.random_range(0..total);
    for (v, w) in table {
        if pick < *w {
            return *v;
        }
        pick -= w;
    }
    table[0].0
}

/// A deterministic service mesh and its clock; every call continues where the
/// last one stopped.
pub struct Mesh {
    rng: StdRng,
    specs: std::sync::Arc<Vec<ServiceSpec>>,
    pods: Vec<Pod>,
    /// Every pod's weight: how often it exports (busier services export more).
    pod_weights: Vec<u32>,
    sessions: Vec<String>,
    clock: u64,
    /// Finished spans per pod, waiting for a full request.
    buffers: Vec<Vec<(Scope, Span)>>,
    next_pod: usize,
}

impl Mesh {
    pub fn new(seed: u64) -> Mesh {
        let mut rng = StdRng::seed_from_u64(seed);
        let specs = std::sync::Arc::new(services());
        let mut pods = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let replicaset = letters(&mut rng, 10);
            for _ in 0..spec.pods {
                pods.push(pod(&mut rng, i, spec, &replicaset));
            }
        }
        let pod_count = pods.len();
        let pod_weights = pods
            .iter()
            .map(|p| specs[p.service].endpoints.len() as u32 + 1)
            .collect();
        let sessions = (0..500).map(|_| uuid(&mut rng)).collect();
        Mesh {
            rng,
            specs,
            pods,
            pod_weights,
            sessions,
            clock: T0,
            buffers: (0..pod_count).map(|_| Vec::new()).collect(),
            next_pod: 0,
        }
    }

    /// The next pod to export: pods take turns in proportion to their weight.
    fn pick_pod(&mut self) -> usize {
        let total: u32 = self.pod_weights.iter().sum();
        let mut pick = self.rng.random_range(0..total);
        for (i, w) in self.pod_weights.iter().enumerate() {
            if pick < *w {
                self.next_pod = i;
                return i;
            }
            pick -= w;
        }
        self.next_pod
    }

    fn session(&mut self) -> String {
        let i = self.rng.random_range(0..self.sessions.len());
        self.sessions[i].clone()
    }

    /// One pod's export of `spans` spans: the first pod whose buffer holds that
    /// many, simulating whole traces through the mesh until one does.
    pub fn traces(&mut self, spans: usize) -> ExportTraceServiceRequest {
        let spans = spans.max(1);
        let pod = loop {
            if let Some(p) = self.buffers.iter().position(|b| b.len() >= spans) {
                break p;
            }
            self.trace();
        };
        let out: Vec<(Scope, Span)> = self.buffers[pod].drain(..spans).collect();
        let language = self.specs[self.pods[pod].service].language;
        // One ScopeSpans per instrumentation scope, spans in the order they ended.
        let mut scopes: Vec<ScopeSpans> = Vec::new();
        let mut order: Vec<Scope> = Vec::new();
        for (scope, span) in out {
            let i = match order.iter().position(|s| *s == scope) {
                Some(i) => i,
                None => {
                    order.push(scope);
                    let (name, version) = scope.name_version(language);
                    scopes.push(ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: name.to_string(),
                            version: version.to_string(),
                            ..Default::default()
                        }),
                        spans: Vec::new(),
                        schema_url: SCHEMA_URL.to_string(),
                    });
                    order.len() - 1
                }
            };
            scopes[i].spans.push(span);
        }
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.pods[pod].resource.clone()),
                scope_spans: scopes,
                schema_url: SCHEMA_URL.to_string(),
            }],
        }
    }

    /// A random pod of `service` and the endpoint a call reaches, if the mesh has it.
    fn callee(&mut self, call: Call) -> Option<(usize, usize)> {
        let (service, endpoint) = self.specs.iter().enumerate().find_map(|(i, s)| {
            let e = s.endpoints.iter().position(|e| match (call, &e.inbound) {
                (Call::Grpc(to, svc, m), Inbound::Grpc(svc2, m2)) => to == s.name && svc == *svc2 && m == *m2,
                (Call::Http(to, m, r), Inbound::Http(m2, r2)) => to == s.name && m == *m2 && r == *r2,
                _ => false,
            })?;
            Some((i, e))
        })?;
        let pods: Vec<usize> = (0..self.pods.len())
            .filter(|p| self.pods[*p].service == service)
            .collect();
        Some((pods[self.rng.random_range(0..pods.len())], endpoint))
    }

    /// One trace from a frontend pod down through the services it calls.
    fn trace(&mut self) {
        // ~3,000 traces per second enter the mesh.
        self.clock += lognormal_ns(&mut self.rng, 250.0, 1.0);
        let frontends: Vec<usize> = (0..self.pods.len())
            .filter(|p| self.pods[*p].service == 0)
            .collect();
        let pod = frontends[self.rng.random_range(0..frontends.len())];
        let spec = &self.specs[0];
        let total: u32 = spec.endpoints.iter().map(|e| e.weight).sum();
        let mut pick = self.rng.random_range(0..total);
        let endpoint = spec
            .endpoints
            .iter()
            .position(|e| {
                let hit = pick < e.weight;
                pick = pick.saturating_sub(e.weight);
                hit
            })
            .unwrap_or(0);
        let trace_id: [u8; 16] = self.rng.random();
        let session = self.session();
        let start = self.clock;
        self.handle(pod, endpoint, trace_id, Vec::new(), start, &session);
    }

    /// `pod` handles a request at `endpoint`: the CLIENT spans of its calls (and,
    /// recursively, what the callees do), then its SERVER span, each appended to
    /// its pod's buffer as it ends. Returns the end time and whether it failed.
    fn handle(
        &mut self,
        pod: usize,
        endpoint: usize,
        trace_id: [u8; 16],
        parent: Vec<u8>,
        start: u64,
        session: &str,
    ) -> (u64, bool) {
        let specs = self.specs.clone();
        let spec = &specs[self.pods[pod].service];
        let server_id: [u8; 8] = self.rng.random();
        let mut t = start + lognormal_ns(&mut self.rng, 40.0, 0.5);
        let mut failed = false;
        for call in spec.endpoints[endpoint].calls {
            let client_id: [u8; 8] = self.rng.random();
            let (end, callee_failed) = match self.callee(*call) {
                Some((callee_pod, callee_endpoint)) => {
                    let sent = t + lognormal_ns(&mut self.rng, 150.0, 0.5);
                    let (end, f) = self.handle(
                        callee_pod,
                        callee_endpoint,
                        trace_id,
                        client_id.to_vec(),
                        sent,
                        session,
                    );
                    (end + lognormal_ns(&mut self.rng, 150.0, 0.5), Some(f))
                }
                None => {
                    let duration = match call {
                        Call::Grpc(..) => lognormal_ns(&mut self.rng, 800.0, 0.9),
                        Call::Http(..) => lognormal_ns(&mut self.rng, 1500.0, 0.9),
                        Call::Sql(op, ..) => {
                            lognormal_ns(&mut self.rng, if *op == "SELECT" { 900.0 } else { 2500.0 }, 0.8)
                        }
                        Call::Redis(..) => lognormal_ns(&mut self.rng, 250.0, 0.6),
                    };
                    (t + duration, None)
                }
            };
            let (scope, span, error) = self.client_span(
                *call,
                (trace_id, server_id, client_id),
                (t, end),
                callee_failed,
                session,
            );
            failed |= error;
            self.buffers[pod].push((scope, span));
            t = end + lognormal_ns(&mut self.rng, 30.0, 0.5);
        }
        let median = spec.endpoints[endpoint].median_us;
        let end = t + lognormal_ns(&mut self.rng, median, 0.7);
        let port = spec.port;
        let peer = format!(
            "10.0.{}.{}",
            self.rng.random_range(64..96),
            self.rng.random_range(2..250)
        );
        let (scope, name, mut attributes, status, error) = match spec.endpoints[endpoint].inbound {
            Inbound::Http(method, route) => {
                let mut code = weighted(&mut self.rng, STATUS_CODES);
                if failed && code < 500 {
                    code = 500;
                }
                let path = self.path(route);
                let mut a = vec![
                    kv("http.request.method", method),
                    kv("http.route", route),
                    kv("url.path", path),
                    kv("url.scheme", "http"),
                    kv_int("http.response.status_code", code),
                    kv(
                        "server.address",
                        format!("{}.{NAMESPACE}.svc.cluster.local", spec.name),
                    ),
                    kv_int("server.port", port),
                    kv("network.protocol.version", "1.1"),
                    kv("client.address", peer.clone()),
                    kv("network.peer.address", peer),
                ];
                if spec.name == "frontend" {
                    a.push(kv(
                        "user_agent.original",
                        ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                         "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                         "python-requests/2.32.3"][self.rng.random_range(0..3)],
                    ));
                }
                (Scope::Http, format!("{method} {route}"), a, code, code >= 500)
            }
            Inbound::Grpc(svc, method) => {
                let mut code = weighted(&mut self.rng, GRPC_CODES);
                if failed && code == 0 {
                    code = 13;
                }
                let a = vec![
                    kv("rpc.system", "grpc"),
                    kv("rpc.service", svc),
                    kv("rpc.method", method),
                    kv_int("rpc.grpc.status_code", code),
                    kv(
                        "server.address",
                        format!("{}.{NAMESPACE}.svc.cluster.local", spec.name),
                    ),
                    kv_int("server.port", port),
                    kv("network.peer.address", peer),
                    kv_int("network.peer.port", self.rng.random_range(32768..61000)),
                ];
                (
                    Scope::Grpc,
                    format!("{svc}/{method}"),
                    a,
                    code,
                    matches!(code, 2 | 13 | 14),
                )
            }
        };
        if spec.name == "frontend" {
            attributes.push(kv("session.id", session));
        }
        let events = if error {
            vec![exception_event(end, status)]
        } else {
            Vec::new()
        };
        self.buffers[pod].push((
            scope,
            Span {
                trace_id: trace_id.to_vec(),
                span_id: server_id.to_vec(),
                flags: if parent.is_empty() { 0x101 } else { 0x301 },
                parent_span_id: parent,
                name,
                kind: SpanKind::Server as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes,
                events,
                status: Some(Status {
                    code: if error {
                        StatusCode::Error
                    } else {
                        StatusCode::Unset
                    } as i32,
                    message: String::new(),
                }),
                ..Default::default()
            },
        ));
        (end, error)
    }

    /// A route with its parameters filled in.
    fn path(&mut self, route: &str) -> String {
        if route.contains("{productId}") {
            let p = PRODUCTS[self.rng.random_range(0..PRODUCTS.len())];
            route.replace("{productId}", p)
        } else {
            route.to_string()
        }
    }

    fn client_span(
        &mut self,
        call: Call,
        (trace_id, parent, id): ([u8; 16], [u8; 8], [u8; 8]),
        (start, end): (u64, u64),
        callee_failed: Option<bool>,
        session: &str,
    ) -> (Scope, Span, bool) {
        let (scope, name, attributes, error) = match call {
            Call::Grpc(to, svc, method) => {
                let code = match callee_failed {
                    Some(true) => 13,
                    Some(false) => 0,
                    None => weighted(&mut self.rng, GRPC_CODES),
                };
                let port = self.port_of(to);
                (
                    Scope::Grpc,
                    format!("{svc}/{method}"),
                    vec![
                        kv("rpc.system", "grpc"),
                        kv("rpc.service", svc),
                        kv("rpc.method", method),
                        kv_int("rpc.grpc.status_code", code),
                        kv("server.address", format!("{to}.{NAMESPACE}.svc.cluster.local")),
                        kv_int("server.port", port),
                    ],
                    matches!(code, 2 | 13 | 14),
                )
            }
            Call::Http(to, method, route) => {
                let code = match callee_failed {
                    Some(true) => 500,
                    Some(false) => 200,
                    None => weighted(&mut self.rng, STATUS_CODES),
                };
                let port = self.port_of(to);
                let path = self.path(route);
                (
                    Scope::Http,
                    method.to_string(),
                    vec![
                        kv("http.request.method", method),
                        kv(
                            "url.full",
                            format!("http://{to}.{NAMESPACE}.svc.cluster.local:{port}{path}"),
                        ),
                        kv("server.address", format!("{to}.{NAMESPACE}.svc.cluster.local")),
                        kv_int("server.port", port),
                        kv_int("http.response.status_code", code),
                        kv("network.protocol.version", "1.1"),
                    ],
                    code >= 400,
                )
            }
            Call::Sql(op, table, query) => (
                Scope::Sql,
                format!("{op} {NAMESPACE}.{table}"),
                vec![
                    kv("db.system", "postgresql"),
                    kv("db.namespace", NAMESPACE),
                    kv("db.operation.name", op),
                    kv("db.collection.name", table),
                    kv("db.query.text", query),
                    kv(
                        "server.address",
                        format!("postgresql.{NAMESPACE}.svc.cluster.local"),
                    ),
                    kv_int("server.port", 5432),
                ],
                self.rng.random_ratio(1, 500),
            ),
            Call::Redis(command, prefix) => (
                Scope::Redis,
                command.to_string(),
                vec![
                    kv("db.system", "redis"),
                    kv("db.operation.name", command),
                    kv("db.query.text", format!("{command} {prefix}:{session}")),
                    kv_int("db.namespace", 0),
                    kv(
                        "server.address",
                        format!("valkey-cart.{NAMESPACE}.svc.cluster.local"),
                    ),
                    kv_int("server.port", 6379),
                    kv_bool("db.redis.cluster", false),
                ],
                self.rng.random_ratio(1, 1000),
            ),
        };
        let span = Span {
            trace_id: trace_id.to_vec(),
            span_id: id.to_vec(),
            parent_span_id: parent.to_vec(),
            flags: 0x101,
            name,
            kind: SpanKind::Client as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            status: Some(Status {
                code: if error {
                    StatusCode::Error
                } else {
                    StatusCode::Unset
                } as i32,
                message: String::new(),
            }),
            ..Default::default()
        };
        (scope, span, error)
    }

    fn port_of(&self, service: &str) -> i64 {
        self.specs
            .iter()
            .find(|s| s.name == service)
            .map_or(8080, |s| s.port)
    }

    /// One pod's export of `records` log records: templated messages with a
    /// few parameters, mostly INFO, most inside a span (trace and span ids set).
    pub fn logs(&mut self, records: usize) -> ExportLogsServiceRequest {
        let pod = self.pick_pod();
        let service = self.pods[pod].service;
        let loggers = self.specs[service].loggers;
        let mut scopes: Vec<ScopeLogs> = loggers
            .iter()
            .map(|l| ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: (*l).to_string(),
                    ..Default::default()
                }),
                log_records: Vec::new(),
                schema_url: String::new(),
            })
            .collect();
        for _ in 0..records {
            self.clock += lognormal_ns(&mut self.rng, 400.0, 1.0);
            let spec = &self.specs[service];
            let template = spec.messages[self.rng.random_range(0..spec.messages.len())];
            let logger = self.rng.random_range(0..loggers.len());
            let (severity, text) = match self.rng.random_range(0..100) {
                0..3 => (SeverityNumber::Debug, "DEBUG"),
                3..88 => (SeverityNumber::Info, "INFO"),
                88..96 => (SeverityNumber::Warn, "WARN"),
                _ => (SeverityNumber::Error, "ERROR"),
            };
            let body = self.fill(template);
            let in_span = self.rng.random_ratio(7, 10);
            let thread = format!("worker-{}", self.rng.random_range(0..8));
            let record = LogRecord {
                time_unix_nano: self.clock,
                observed_time_unix_nano: self.clock + lognormal_ns(&mut self.rng, 2000.0, 0.5),
                severity_number: severity as i32,
                severity_text: text.to_string(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(body)),
                }),
                attributes: vec![
                    kv("thread.name", thread),
                    kv("code.function.name", format!("{}.handle", loggers[logger])),
                ],
                flags: if in_span { 1 } else { 0 },
                trace_id: if in_span {
                    self.rng.random::<[u8; 16]>().to_vec()
                } else {
                    Vec::new()
                },
                span_id: if in_span {
                    self.rng.random::<[u8; 8]>().to_vec()
                } else {
                    Vec::new()
                },
                ..Default::default()
            };
            scopes[logger].log_records.push(record);
        }
        scopes.retain(|s| !s.log_records.is_empty());
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(self.pods[pod].resource.clone()),
                scope_logs: scopes,
                schema_url: SCHEMA_URL.to_string(),
            }],
        }
    }

    fn fill(&mut self, template: &str) -> String {
        let mut s = template.to_string();
        if s.contains("{product}") {
            s = s.replace("{product}", PRODUCTS[self.rng.random_range(0..PRODUCTS.len())]);
        }
        if s.contains("{session}") {
            let session = self.session();
            s = s.replace("{session}", &session);
        }
        if s.contains("{order}") {
            s = s.replace("{order}", &uuid(&mut self.rng));
        }
        if s.contains("{count}") {
            s = s.replace("{count}", &self.rng.random_range(1..10_000).to_string());
        }
        if s.contains("{status}") {
            s = s.replace("{status}", &weighted(&mut self.rng, STATUS_CODES).to_string());
        }
        s.replace("{route}", "/api/products")
    }
}

fn exception_event(at: u64, status: i64) -> Event {
    let message = if status >= 500 || status == 13 || status == 14 {
        "upstream request failed: connection reset by peer"
    } else {
        "not found"
    };
    Event {
        time_unix_nano: at,
        name: "exception".to_string(),
        attributes: vec![kv("exception.type", "Error"), kv("exception.message", message)],
        dropped_attributes_count: 0,
    }
}

/// Attributes of a request as a list, for tests and tools that look inside.
pub fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn same_seed_same_requests() {
        let (mut a, mut b) = (Mesh::new(3), Mesh::new(3));
        for _ in 0..5 {
            assert_eq!(a.traces(100).encode_to_vec(), b.traces(100).encode_to_vec());
            assert_eq!(a.logs(50).encode_to_vec(), b.logs(50).encode_to_vec());
        }
        assert_ne!(
            Mesh::new(4).traces(100).encode_to_vec(),
            Mesh::new(3).traces(100).encode_to_vec()
        );
    }

    #[test]
    fn requests_hold_the_asked_count_from_one_pod() {
        let mut m = Mesh::new(1);
        for _ in 0..20 {
            let r = m.traces(100);
            assert_eq!(r.resource_spans.len(), 1);
            let n: usize = r.resource_spans[0]
                .scope_spans
                .iter()
                .map(|s| s.spans.len())
                .sum();
            assert_eq!(n, 100);
            let logs = m.logs(30);
            let n: usize = logs.resource_logs[0]
                .scope_logs
                .iter()
                .map(|s| s.log_records.len())
                .sum();
            assert_eq!(n, 30);
        }
    }

    #[test]
    fn traces_cross_services() {
        let mut m = Mesh::new(5);
        let (mut clients, mut remote_parents) = (std::collections::HashSet::new(), Vec::new());
        for _ in 0..40 {
            let r = m.traces(100);
            for s in r.resource_spans[0].scope_spans.iter().flat_map(|s| &s.spans) {
                if s.kind == SpanKind::Client as i32 {
                    clients.insert(s.span_id.clone());
                } else if !s.parent_span_id.is_empty() {
                    remote_parents.push(s.parent_span_id.clone());
                }
            }
        }
        let linked = remote_parents.iter().filter(|p| clients.contains(*p)).count();
        assert!(
            linked * 2 > remote_parents.len(),
            "{linked} of {}",
            remote_parents.len()
        );
    }

    #[test]
    fn spans_look_like_a_mesh() {
        let mut m = Mesh::new(9);
        let mut routes = std::collections::BTreeSet::new();
        let mut servers = 0;
        let mut durations = Vec::new();
        for _ in 0..50 {
            let r = m.traces(100);
            let rs = &r.resource_spans[0];
            let res = &rs
                .resource
                .as_ref()
                .map(|r| r.attributes.clone())
                .unwrap_or_default();
            assert!(attribute(res, "k8s.pod.name").is_some());
            assert!(attribute(res, "service.name").is_some());
            for s in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                assert!(s.end_time_unix_nano > s.start_time_unix_nano);
                durations.push(s.end_time_unix_nano - s.start_time_unix_nano);
                if s.kind == SpanKind::Server as i32 {
                    servers += 1;
                    routes.insert(s.name.clone());
                    let has_http = attribute(&s.attributes, "http.route").is_some();
                    let has_rpc = attribute(&s.attributes, "rpc.method").is_some();
                    assert!(has_http || has_rpc, "{}", s.name);
                }
            }
        }
        // A few dozen distinct operations, repeated across thousands of spans.
        assert!(servers > 500, "{servers}");
        assert!((5..40).contains(&routes.len()), "{routes:?}");
        // Log-normal: a long tail well above the median.
        durations.sort_unstable();
        let median = durations[durations.len() / 2];
        let p99 = durations[durations.len() * 99 / 100];
        assert!(p99 > 4 * median, "median {median} p99 {p99}");
    }
}
