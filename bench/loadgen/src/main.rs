//! `weir-loadgen`: an OTLP/gRPC load generator and a cheap counting sink, used
//! by `bench/passthrough.py` to benchmark weir against other collectors.

mod codec;
mod handshakes;
mod sink;
mod traces;
mod wire;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "weir-loadgen", version, about)]
struct Cli {
    /// Tokio worker threads.
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an OTLP/gRPC sink that counts spans, log records and metric data
    /// points and serves the totals as JSON on `GET /count`.
    Sink(sink::SinkArgs),
    /// Send pre-encoded OTLP/gRPC trace export requests.
    Traces(traces::TracesArgs),
    /// Open TLS connections as fast as possible (handshake, then close) and
    /// report the rate.
    Handshakes(handshakes::HandshakeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
        .context("building tokio runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Sink(args) => sink::run(args).await,
            Command::Traces(args) => traces::run(args).await,
            Command::Handshakes(args) => handshakes::run(args).await,
        }
    })
}
