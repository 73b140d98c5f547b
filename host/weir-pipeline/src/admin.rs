//! The admin endpoints: liveness, readiness and Prometheus metrics. `weir run`
//! serves this router on its own thread and runtime with its own connection cap,
//! so it answers while the data listeners are flooded, and keeps it up until the
//! queues are drained so the final metrics can be scraped. With a [`Control`]
//! it also serves `GET /status` and `POST /reload`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use futures::future::BoxFuture;

use crate::Metrics;

/// Whether pipelines are running; /ready answers 503 until set and after shutdown begins.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What the admin server asks of the running process beyond metrics.
pub trait Control: Send + Sync + 'static {
    /// The `/status` document (JSON).
    fn status(&self) -> String;
    /// Reloads the config and answers when that reload is over: whether it
    /// applied (a JSON document saying what happened).
    fn reload(&self) -> BoxFuture<'static, ControlAnswer>;
}

/// An answer of [`Control::reload`].
pub struct ControlAnswer {
    pub ok: bool,
    pub json: String,
}

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    ready: Readiness,
    control: Option<Arc<dyn Control>>,
}

pub fn router(metrics: Arc<Metrics>, ready: Readiness, control: Option<Arc<dyn Control>>) -> Router {
    let mut router = Router::new()
        .route("/health", get(|| async { "OK\n" }))
        .route("/ready", get(ready_handler))
        .route("/metrics", get(metrics_handler));
    if control.is_some() {
        router = router
            .route("/status", get(status_handler))
            .route("/reload", post(reload_handler));
    }
    router.with_state(AdminState {
        metrics,
        ready,
        control,
    })
}

const JSON: (header::HeaderName, &str) = (header::CONTENT_TYPE, "application/json");

async fn status_handler(State(s): State<AdminState>) -> axum::response::Response {
    match s.control {
        Some(c) => ([JSON], c.status()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn reload_handler(State(s): State<AdminState>) -> axum::response::Response {
    let Some(c) = s.control else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let answer = c.reload().await;
    // 422: the new config was refused, and the running one stays.
    let code = if answer.ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (code, [JSON], answer.json).into_response()
}

async fn ready_handler(State(s): State<AdminState>) -> impl IntoResponse {
    if s.ready.get() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics_handler(State(s): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}
