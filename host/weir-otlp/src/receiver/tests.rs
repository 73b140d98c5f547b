//! The shared listener over real sockets: connection cap, header-read and idle
//! timeouts, shutdown with one deadline, the own-thread server, and gRPC framing
//! over HTTP/2 with a tonic client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use weir_pipeline::config::{ConnectionLimits, HumanDuration};
use weir_pipeline::{Ingest, Metrics, Signal};

use super::listen::{self, AtFdLimit, ListenerSpec};
use super::threaded::ThreadedServer;
use super::{ConnectionMetrics, DecodePool, Protocol, Receiver, Shutdown, grpc};

fn limits(max_connections: usize, header_read: Duration, idle: Duration) -> ConnectionLimits {
    ConnectionLimits {
        max_connections,
        header_read_timeout: HumanDuration(header_read),
        idle_timeout: HumanDuration(idle),
        ..ConnectionLimits::default()
    }
}

fn spec(limits: ConnectionLimits, protocol: Protocol) -> ListenerSpec {
    ListenerSpec {
        receiver: "test".into(),
        transport: "http",
        config_key: "receivers.test.http".into(),
        limits,
        protocol,
        at_fd_limit: AtFdLimit::Shed,
        tls: None,
    }
}

fn test_router() -> Router {
    Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "slow"
            }),
        )
        .route(
            "/hang",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "never"
            }),
        )
}

struct Server {
    addr: SocketAddr,
    shutdown: Shutdown,
    task: JoinHandle<()>,
    metrics: Arc<Metrics>,
}

async fn start(router: Router, spec: ListenerSpec) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let metrics = Metrics::new();
    let conn_metrics = ConnectionMetrics::register(&metrics);
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move { listen::serve(listener, router, spec, &conn_metrics, stop).await });
    Server {
        addr,
        shutdown,
        task,
        metrics,
    }
}

fn metric(metrics: &Metrics, series: &str) -> u64 {
    let text = metrics.encode();
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One HTTP/1.1 GET on `stream`; returns the response body.
async fn get_on(stream: &mut TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("response in time")
            .expect("read");
        assert!(
            n > 0,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if len.is_some_and(|len| body.len() >= len) {
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                return body.to_owned();
            }
        }
    }
}

/// Waits for the server to close `stream`; returns how long that took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    closed_after(stream, limit, true).await
}

/// Like `closed_within`, but fails if the server sends anything first.
async fn closed_silently_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    closed_after(stream, limit, false).await
}

async fn closed_after(stream: &mut TcpStream, limit: Duration, data_ok: bool) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout_at(started + limit, stream.read(&mut buf)).await {
            Err(_) => panic!("connection still open after {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(n)) => assert!(data_ok, "server sent {:?}", &buf[..n]),
        }
    }
}

#[tokio::test]
async fn over_the_cap_connections_are_closed_at_once_and_counted() {
    let s = start(
        test_router(),
        spec(
            limits(2, Duration::from_secs(30), Duration::from_secs(30)),
            Protocol::Auto,
        ),
    )
    .await;
    let mut c1 = TcpStream::connect(s.addr).await.expect("connect");
    let mut c2 = TcpStream::connect(s.addr).await.expect("connect");
    assert_eq!(get_on(&mut c1, "/ok").await, "ok");
    assert_eq!(get_on(&mut c2, "/ok").await, "ok");

    let mut c3 = TcpStream::connect(s.addr).await.expect("connect");
    closed_within(&mut c3, Duration::from_secs(2)).await;
    assert_eq!(
        metric(
            &s.metrics,
            "weir_receiver_connections_refused_total{receiver=\"test\",transport=\"http\",reason=\"max_connections\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &s.metrics,
            "weir_receiver_connections{receiver=\"test\",transport=\"http\"}"
        ),
        2
    );
    // Existing connections are still served, and a freed slot is reused.
    assert_eq!(get_on(&mut c1, "/ok").await, "ok");
    drop(c2);
    let mut c4 = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if metric(
            &s.metrics,
            "weir_receiver_connections{receiver=\"test\",transport=\"http\"}",
        ) < 2
        {
            c4 = Some(TcpStream::connect(s.addr).await.expect("connect"));
            break;
        }
    }
    let mut c4 = c4.expect("the closed connection's slot was freed");
    assert_eq!(get_on(&mut c4, "/ok").await, "ok");
    s.task.abort();
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_read_timeout() {
    let s = start(
        test_router(),
        spec(
            limits(16, Duration::from_millis(300), Duration::from_secs(30)),
            Protocol::Auto,
        ),
    )
    .await;
    let mut silent = TcpStream::connect(s.addr).await.expect("connect");
    let took = closed_silently_within(&mut silent, Duration::from_secs(3)).await;
    assert!(took >= Duration::from_millis(200), "closed too early: {took:?}");
    assert_eq!(
        metric(
            &s.metrics,
            "weir_receiver_connections_timed_out_total{receiver=\"test\",transport=\"http\",reason=\"header_read_timeout\"}"
        ),
        1
    );
    // A client that starts a request but never finishes its headers, too.
    let mut slow = TcpStream::connect(s.addr).await.expect("connect");
    slow.write_all(b"GET /ok HTTP/1.1\r\nhost: te")
        .await
        .expect("write");
    closed_within(&mut slow, Duration::from_secs(3)).await;
    s.task.abort();
}

#[tokio::test]
async fn silent_http2_connections_time_out_too() {
    let s = start(
        test_router(),
        spec(
            limits(16, Duration::from_millis(300), Duration::from_secs(30)),
            Protocol::Http2Only,
        ),
    )
    .await;
    // Closed before weir even sets up HTTP/2 (no SETTINGS frame sent).
    let mut silent = TcpStream::connect(s.addr).await.expect("connect");
    closed_silently_within(&mut silent, Duration::from_secs(3)).await;
    // The preface alone is not a request.
    let mut preface_only = TcpStream::connect(s.addr).await.expect("connect");
    preface_only
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("write");
    closed_within(&mut preface_only, Duration::from_secs(3)).await;
    s.task.abort();
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let s = start(
        test_router(),
        spec(
            limits(16, Duration::from_secs(30), Duration::from_millis(300)),
            Protocol::Auto,
        ),
    )
    .await;
    let mut c = TcpStream::connect(s.addr).await.expect("connect");
    assert_eq!(get_on(&mut c, "/ok").await, "ok");
    let took = closed_within(&mut c, Duration::from_secs(3)).await;
    assert!(took >= Duration::from_millis(200), "closed too early: {took:?}");
    assert_eq!(
        metric(
            &s.metrics,
            "weir_receiver_connections_timed_out_total{receiver=\"test\",transport=\"http\",reason=\"idle_timeout\"}"
        ),
        1
    );
    s.task.abort();
}

#[tokio::test]
async fn shutdown_closes_idle_connections_at_once_and_lets_requests_finish() {
    let s = start(
        test_router(),
        spec(
            limits(16, Duration::from_secs(30), Duration::from_secs(30)),
            Protocol::Auto,
        ),
    )
    .await;
    let mut silent = TcpStream::connect(s.addr).await.expect("connect");
    let mut idle = TcpStream::connect(s.addr).await.expect("connect");
    assert_eq!(get_on(&mut idle, "/ok").await, "ok");
    let mut busy = TcpStream::connect(s.addr).await.expect("connect");
    let slow = tokio::spawn(async move { get_on(&mut busy, "/slow").await });
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    s.shutdown.begin(started + Duration::from_secs(10));
    closed_silently_within(&mut silent, Duration::from_millis(500)).await;
    closed_within(&mut idle, Duration::from_millis(500)).await;
    assert_eq!(slow.await.expect("join"), "slow");
    tokio::time::timeout(Duration::from_secs(3), s.task)
        .await
        .expect("serve returns once its connections are done")
        .expect("join");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        TcpStream::connect(s.addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn requests_still_running_at_the_deadline_are_dropped() {
    let s = start(
        test_router(),
        spec(
            limits(16, Duration::from_secs(30), Duration::from_secs(30)),
            Protocol::Auto,
        ),
    )
    .await;
    let mut c = TcpStream::connect(s.addr).await.expect("connect");
    c.write_all(b"GET /hang HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    s.shutdown.begin(started + Duration::from_millis(300));
    tokio::time::timeout(Duration::from_secs(2), s.task)
        .await
        .expect("serve returns at the deadline")
        .expect("join");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(250), "{took:?}");
    closed_within(&mut c, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn threaded_server_serves_on_its_own_thread_and_stops() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = std_listener.local_addr().expect("addr");
    let metrics = Metrics::new();
    let server = ThreadedServer::start(
        "test-admin",
        std_listener,
        Router::new().route(
            "/who",
            get(|| async { std::thread::current().name().unwrap_or("").to_owned() }),
        ),
        ListenerSpec {
            at_fd_limit: AtFdLimit::Serve { reserve: 2 },
            ..spec(ConnectionLimits::default(), Protocol::Auto)
        },
        ConnectionMetrics::register(&metrics),
    )
    .expect("start");
    let mut c = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(get_on(&mut c, "/who").await, "test-admin");
    let started = Instant::now();
    server.stop(Instant::now() + Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    closed_within(&mut c, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn grpc_answers_over_http2_and_counts_refusals() {
    let metrics = Metrics::new();
    let ingest = Arc::new(Ingest::new("otlp", Vec::new(), metrics.clone()));
    let receiver = Receiver {
        ingest,
        max_request_size: 1 << 20,
        decode: DecodePool::new(1),
        auth: None,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let conn_metrics = ConnectionMetrics::register(&metrics);
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        listen::serve(
            listener,
            grpc::router(receiver),
            spec(ConnectionLimits::default(), Protocol::Http2Only),
            &conn_metrics,
            stop,
        )
        .await
    });

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static(crate::grpc_path(Signal::Logs));
    let err = client
        .unary::<bytes::Bytes, bytes::Bytes, _>(
            tonic::Request::new(bytes::Bytes::new()),
            path,
            crate::codec::RawCodec,
        )
        .await
        .expect_err("no logs pipeline");
    assert_eq!(err.code(), tonic::Code::Unimplemented, "{err}");
    assert_eq!(
        metric(
            &metrics,
            "weir_receiver_refused_requests_total{receiver=\"otlp\",transport=\"grpc\",signal=\"logs\",reason=\"no_pipeline\"}"
        ),
        1
    );
    shutdown.begin(Instant::now() + Duration::from_secs(2));
    drop(client);
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .expect("serve returns")
        .expect("join");
}
