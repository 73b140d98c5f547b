//! What the receivers pay per request before a batch is accepted: `count_items`
//! (framing, ids, UTF-8 and nesting checks) on a realistic traces request.
//!
//! ```text
//! cargo bench -p weir-otlp --bench wire
//! WIRE_CPU_ITERS=20000 cargo bench -p weir-otlp --bench wire   # CPU time, for a busy machine
//! ```
//!
//! The request is shaped like weir's load generator's: 100 spans of ~700 bytes,
//! each with 10 string attributes, under one resource with 7 attributes. Divide
//! the reported time by 100 for ns/span (criterion also prints spans/s).
//! `traces_100_spans_baseline` runs the walk as it was before the UTF-8,
//! nesting and wire-type checks, on the same request, for comparison.

use criterion::{Criterion, Throughput, criterion_group};
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
    assert_eq!(baseline::count_items(Signal::Traces, &req), Ok(SPANS));
    eprintln!("request: {} bytes, {} bytes/span", req.len(), req.len() / SPANS);
    let mut g = c.benchmark_group("count_items");
    g.throughput(Throughput::Elements(SPANS as u64));
    g.bench_function("traces_100_spans", |b| {
        b.iter(|| weir_otlp::wire::count_items(Signal::Traces, std::hint::black_box(&req)))
    });
    g.bench_function("traces_100_spans_baseline", |b| {
        b.iter(|| baseline::count_items(Signal::Traces, std::hint::black_box(&req)))
    });
    g.finish();
}

/// `count_items` as it was before it checked UTF-8, nesting and wire types
/// (framing and span/log ids only), kept to measure what the checks cost.
mod baseline {
    use weir_pipeline::Signal;

    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error("malformed protobuf: {what} at byte {offset}")]
    pub struct WireError {
        pub what: &'static str,
        pub offset: usize,
    }

    /// One field as read off the wire.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Value<'a> {
        Varint(u64),
        Fixed64(u64),
        Fixed32(u32),
        Bytes(&'a [u8]),
    }

    /// Iterates over the fields of one encoded message.
    pub struct Fields<'a> {
        buf: &'a [u8],
        pos: usize,
        base: usize,
    }

    impl<'a> Fields<'a> {
        fn nested(buf: &'a [u8], base: usize) -> Self {
            Fields { buf, pos: 0, base }
        }

        fn err(&self, what: &'static str) -> WireError {
            WireError {
                what,
                offset: self.base + self.pos,
            }
        }

        fn varint(&mut self) -> Result<u64, WireError> {
            let mut value = 0u64;
            for i in 0..10 {
                let Some(&b) = self.buf.get(self.pos) else {
                    return Err(self.err("truncated varint"));
                };
                self.pos += 1;
                value |= u64::from(b & 0x7f) << (7 * i);
                if b < 0x80 {
                    return Ok(value);
                }
            }
            Err(self.err("varint longer than 10 bytes"))
        }

        fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
            let mut a = [0u8; N];
            a.copy_from_slice(self.take(N)?);
            Ok(a)
        }

        fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
            let end = self
                .pos
                .checked_add(n)
                .filter(|&e| e <= self.buf.len())
                .ok_or_else(|| self.err("field runs past the end of its message"))?;
            let s = &self.buf[self.pos..end];
            self.pos = end;
            Ok(s)
        }

        /// The next field as (number, value, offset of the value in the whole request).
        pub fn next_field(&mut self) -> Option<Result<(u32, Value<'a>, usize), WireError>> {
            if self.pos >= self.buf.len() {
                return None;
            }
            Some(self.read_field())
        }

        fn read_field(&mut self) -> Result<(u32, Value<'a>, usize), WireError> {
            let key = self.varint()?;
            let number = u32::try_from(key >> 3).map_err(|_| self.err("field number too large"))?;
            if number == 0 {
                return Err(self.err("field number 0"));
            }
            let start = self.base + self.pos;
            let value = match key & 7 {
                0 => Value::Varint(self.varint()?),
                1 => Value::Fixed64(u64::from_le_bytes(self.array()?)),
                2 => {
                    let len = usize::try_from(self.varint()?).map_err(|_| self.err("length too large"))?;
                    let start_of_bytes = self.base + self.pos;
                    let b = self.take(len)?;
                    return Ok((number, Value::Bytes(b), start_of_bytes));
                }
                5 => Value::Fixed32(u32::from_le_bytes(self.array()?)),
                _ => return Err(self.err("unsupported wire type (groups are not used by OTLP)")),
            };
            Ok((number, value, start))
        }
    }

    /// Walks a message, calling `on` for each length-delimited field `wanted`;
    /// every other field is checked for framing only.
    fn each<'a>(
        buf: &'a [u8],
        base: usize,
        wanted: u32,
        mut on: impl FnMut(&'a [u8], usize) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        let mut fields = Fields::nested(buf, base);
        while let Some(f) = fields.next_field() {
            let (number, value, offset) = f?;
            if number == wanted {
                match value {
                    Value::Bytes(b) => on(b, offset)?,
                    _ => {
                        return Err(WireError {
                            what: "expected an embedded message",
                            offset,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks the framing of a message's fields without looking inside them.
    fn shallow(buf: &[u8], base: usize) -> Result<(), WireError> {
        each(buf, base, u32::MAX, |_, _| Ok(()))
    }

    /// Counts the items in an encoded `Export*ServiceRequest`, validating its framing.
    pub fn count_items(signal: Signal, request: &[u8]) -> Result<usize, WireError> {
        let mut n = 0usize;
        // Request(1: Resource*) → Resource*(2: Scope*) → Scope*(2: item).
        each(request, 0, 1, |resource, at| {
            each(resource, at, 2, |scope, at| {
                each(scope, at, 2, |item, at| {
                    match signal {
                        Signal::Metrics => n += data_points(item, at)?,
                        Signal::Traces => {
                            check_ids(item, at, SPAN_IDS)?;
                            n += 1;
                        }
                        Signal::Logs => {
                            check_ids(item, at, LOG_IDS)?;
                            n += 1;
                        }
                    }
                    Ok(())
                })
            })
        })?;
        Ok(n)
    }

    /// (field number, allowed lengths, what) of the id fields of an item.
    type IdRule = (u32, &'static [usize], &'static str);
    /// Span: trace_id(1) and span_id(2) are required, parent_span_id(4) optional.
    const SPAN_IDS: &[IdRule] = &[
        (1, &[16], "span trace_id must be 16 bytes"),
        (2, &[8], "span span_id must be 8 bytes"),
        (4, &[0, 8], "span parent_span_id must be empty or 8 bytes"),
    ];
    /// Log record: trace_id(9) and span_id(10) are optional.
    const LOG_IDS: &[IdRule] = &[
        (9, &[0, 16], "log record trace_id must be empty or 16 bytes"),
        (10, &[0, 8], "log record span_id must be empty or 8 bytes"),
    ];

    /// Checks an item's framing and the lengths of its id fields; a missing
    /// required id counts as length 0.
    fn check_ids(item: &[u8], base: usize, rules: &[IdRule]) -> Result<(), WireError> {
        let mut seen = [false; 4];
        let mut fields = Fields::nested(item, base);
        while let Some(f) = fields.next_field() {
            let (number, value, offset) = f?;
            if let Some(pos) = rules.iter().position(|r| r.0 == number) {
                let (_, allowed, what) = rules[pos];
                let len = match value {
                    Value::Bytes(b) => b.len(),
                    _ => usize::MAX,
                };
                if !allowed.contains(&len) {
                    return Err(WireError { what, offset });
                }
                seen[pos] = true;
            }
        }
        for (pos, (_, allowed, what)) in rules.iter().enumerate() {
            if !seen[pos] && !allowed.contains(&0) {
                return Err(WireError { what, offset: base });
            }
        }
        Ok(())
    }

    /// Data points of one `Metric`: its data is one of gauge(5), sum(7),
    /// histogram(9), exponential_histogram(10) or summary(11), each holding
    /// data_points in field 1.
    fn data_points(metric: &[u8], base: usize) -> Result<usize, WireError> {
        let mut n = 0;
        let mut fields = Fields::nested(metric, base);
        while let Some(f) = fields.next_field() {
            let (number, value, offset) = f?;
            if let (5 | 7 | 9 | 10 | 11, Value::Bytes(data)) = (number, value) {
                each(data, offset, 1, |point, at| {
                    shallow(point, at)?;
                    n += 1;
                    Ok(())
                })?;
            }
        }
        Ok(n)
    }
}

/// This process's CPU time (user + system) from /proc/self/stat, in clock ticks
/// (1/100 s on Linux): wall time on a busy machine counts other processes too.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let mut f = rest.split_whitespace().skip(11);
    Some(f.next()?.parse::<u64>().ok()? + f.next()?.parse::<u64>().ok()?)
}

/// `WIRE_CPU_ITERS=N cargo bench -p weir-otlp --bench wire`: runs each walk N
/// times and prints CPU ns/span, then exits (no criterion run).
fn cpu_time_mode() -> bool {
    let Some(iters) = std::env::var("WIRE_CPU_ITERS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return false;
    };
    let req = request();
    let run = |name: &str, f: &dyn Fn(&[u8]) -> usize| {
        let (start, wall) = (cpu_ticks(), std::time::Instant::now());
        let mut n = 0;
        for _ in 0..iters {
            n += f(std::hint::black_box(&req));
        }
        let ticks = cpu_ticks()
            .zip(start)
            .map(|(end, start)| end - start)
            .unwrap_or(0);
        let spans = (iters as usize * SPANS) as f64;
        println!(
            "{name}: {:.0} ns/span CPU, {:.0} ns/span wall ({n} spans)",
            ticks as f64 * 1e7 / spans,
            wall.elapsed().as_nanos() as f64 / spans
        );
    };
    for _ in 0..2 {
        run("count_items", &|b| {
            weir_otlp::wire::count_items(Signal::Traces, b).unwrap_or(0)
        });
        run("baseline   ", &|b| {
            baseline::count_items(Signal::Traces, b).unwrap_or(0)
        });
    }
    true
}

criterion_group!(benches, count_items);

fn main() {
    if !cpu_time_mode() {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
}
