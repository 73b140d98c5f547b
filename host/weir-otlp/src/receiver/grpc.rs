//! OTLP/gRPC receiver: the three `Export` methods served by tonic with a
//! pass-through codec, so request bytes reach the pipeline undecoded.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Status};
use weir_pipeline::{Batch, Ingest, Signal, SubmitError};

use crate::codec::RawCodec;
use crate::{grpc_path, wire};

/// Serves OTLP/gRPC on `listener` until `stop` resolves, then finishes in-flight calls.
pub async fn serve(
    listener: TcpListener,
    ingest: Arc<Ingest>,
    max_request_size: usize,
    stop: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let mut router = axum::Router::new();
    for signal in Signal::ALL {
        let svc = ExportService {
            ingest: ingest.clone(),
            signal,
            max_request_size,
        };
        router = router.route_service(grpc_path(signal), svc);
    }
    let router = router.fallback(|| async {
        Status::unimplemented("unknown service or method; weir serves the OTLP export services")
            .into_http::<axum::body::Body>()
    });
    tonic::transport::Server::builder()
        .add_routes(Routes::from(router))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), stop)
        .await
}

#[derive(Clone)]
struct ExportService {
    ingest: Arc<Ingest>,
    signal: Signal,
    max_request_size: usize,
}

impl tower_service::Service<http::Request<axum::body::Body>> for ExportService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<axum::body::Body>) -> Self::Future {
        let svc = self.clone();
        Box::pin(async move {
            // tonic checks the limit on the encoded frame (OUT_OF_RANGE) and after
            // decompression (RESOURCE_EXHAUSTED); give it headroom and apply the
            // configured limit in `handle`, so every oversized request gets
            // RESOURCE_EXHAUSTED as OTLP expects, while tonic's cap still bounds memory.
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(svc.max_request_size.saturating_mul(2).max(4096));
            let mut resp = grpc.unary(svc, req).await;
            out_of_range_to_resource_exhausted(&mut resp);
            Ok(resp)
        })
    }
}

fn out_of_range_to_resource_exhausted(resp: &mut http::Response<tonic::body::Body>) {
    let out_of_range = (Code::OutOfRange as i32).to_string();
    let h = resp.headers_mut();
    if h.get("grpc-status")
        .is_some_and(|v| v.as_bytes() == out_of_range.as_bytes())
    {
        h.insert(
            "grpc-status",
            http::HeaderValue::from(Code::ResourceExhausted as i32),
        );
    }
}

impl tonic::server::UnaryService<Bytes> for ExportService {
    type Response = Bytes;
    type Future = BoxFuture<'static, Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let svc = self.clone();
        Box::pin(async move { svc.handle(request.into_inner()).await.map(tonic::Response::new) })
    }
}

impl ExportService {
    async fn handle(&self, payload: Bytes) -> Result<Bytes, Status> {
        if payload.len() > self.max_request_size {
            return Err(Status::resource_exhausted(format!(
                "request of {} bytes exceeds the limit of {} bytes",
                payload.len(),
                self.max_request_size
            )));
        }
        if !self.ingest.accepts(self.signal) {
            return Err(status_of(SubmitError::NoPipeline(self.signal)));
        }
        let items =
            wire::count_items(self.signal, &payload).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if items == 0 {
            return Ok(Bytes::new());
        }
        self.ingest
            .submit("grpc", Batch::new(self.signal, payload, items))
            .await
            .map_err(status_of)?;
        // An empty Export*ServiceResponse: full success, no partial_success.
        Ok(Bytes::new())
    }
}

pub fn status_of(e: SubmitError) -> Status {
    let code = match e {
        SubmitError::NoPipeline(_) => Code::Unimplemented,
        SubmitError::Full
        | SubmitError::ShuttingDown
        | SubmitError::PluginRejected(_)
        | SubmitError::Unavailable(_) => Code::Unavailable,
        SubmitError::Invalid(_) => Code::InvalidArgument,
        SubmitError::TooLarge { .. } => Code::ResourceExhausted,
    };
    Status::new(code, e.to_string())
}
