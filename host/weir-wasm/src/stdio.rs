//! A plugin's stdout/stderr: lines go to weir's log, at most `cap` bytes per
//! instance per minute; the rest is discarded (and said so once per window), so
//! a chatty plugin can neither fill memory nor flood the log.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

const WINDOW: Duration = Duration::from_secs(60);

struct Inner {
    plugin: String,
    stream: &'static str,
    cap: usize,
    window_start: Instant,
    written: usize,
    discarded: usize,
    partial: Vec<u8>,
}

#[derive(Clone)]
pub struct LogOutput(Arc<Mutex<Inner>>);

impl LogOutput {
    pub fn new(plugin: &str, stream: &'static str, cap: usize) -> Self {
        LogOutput(Arc::new(Mutex::new(Inner {
            plugin: plugin.to_string(),
            stream,
            cap,
            window_start: Instant::now(),
            written: 0,
            discarded: 0,
            partial: Vec::new(),
        })))
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if s.window_start.elapsed() > WINDOW {
            if s.discarded > 0 {
                tracing::warn!(plugin = %s.plugin, stream = s.stream, bytes = s.discarded, "plugin output discarded over the cap");
            }
            s.window_start = Instant::now();
            s.written = 0;
            s.discarded = 0;
        }
        let room = s.cap.saturating_sub(s.written);
        let (keep, rest) = bytes.split_at(bytes.len().min(room));
        s.written += keep.len();
        s.discarded += rest.len();
        s.partial.extend_from_slice(keep);
        while let Some(pos) = s.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = s.partial.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            tracing::info!(target: "weir::plugin", plugin = %s.plugin, stream = s.stream, "{text}");
        }
        if s.partial.len() > 4096 {
            let text = String::from_utf8_lossy(&s.partial).into_owned();
            s.partial.clear();
            tracing::info!(target: "weir::plugin", plugin = %s.plugin, stream = s.stream, "{text}");
        }
    }
}

impl OutputStream for LogOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.write_bytes(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always accept: excess is discarded, never back-pressured onto the plugin.
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogOutput {
    async fn ready(&mut self) {}
}

impl IsTerminal for LogOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl tokio::io::AsyncWrite for LogOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl StdoutStream for LogOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}
