//! Disk queue benchmark: append throughput with each fsync policy, and the time
//! to open (recover) a full queue.
//!
//! cargo run --release -p weir-queue --example queue_bench -- --help

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use weir_queue::{DiskQueue, DiskQueueOptions, Fsync, QueueError};

#[derive(Parser, Debug)]
#[command(about = "Measure weir's disk queue: appends/s and MB/s per fsync policy, and recovery time")]
struct Args {
    /// Directory to benchmark in (on the disk you care about); a fresh temporary
    /// directory inside it is used and removed. Default: the system temp dir.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Which measurements to run.
    #[arg(long, value_enum, default_value = "all")]
    scenario: Scenario,
    /// Payload bytes per record.
    #[arg(long, default_value_t = 64 << 10)]
    record_size: usize,
    /// Concurrent appending tasks.
    #[arg(long, default_value_t = 16)]
    appenders: usize,
    /// Seconds each append scenario runs.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Group-commit interval for the interval scenario, in milliseconds.
    #[arg(long, default_value_t = 10)]
    interval_ms: u64,
    /// Size of the queue filled for the recovery scenario, in MiB.
    #[arg(long, default_value_t = 1024)]
    recovery_mib: u64,
    /// Segment size in MiB.
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
    /// Also time a recovery from a cold page cache (writes /proc/sys/vm/drop_caches:
    /// root only, and it slows everything else on the machine for a moment).
    #[arg(long)]
    drop_caches: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    All,
    Always,
    Interval,
    Recovery,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // RUST_LOG=info shows the queue's own recovery report.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base)?;
    let tmp = tempfile::Builder::new()
        .prefix("weir-queue-bench-")
        .tempdir_in(&base)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    println!(
        "weir-queue bench: {} B records, {} appenders, {} s per run, in {}",
        args.record_size,
        args.appenders,
        args.seconds,
        tmp.path().display()
    );
    if matches!(args.scenario, Scenario::All | Scenario::Always) {
        let r = rt.block_on(append_run(&args, &tmp.path().join("always"), Fsync::Always))?;
        r.print("fsync=always");
    }
    if matches!(args.scenario, Scenario::All | Scenario::Interval) {
        let fsync = Fsync::Interval(Duration::from_millis(args.interval_ms));
        let r = rt.block_on(append_run(&args, &tmp.path().join("interval"), fsync))?;
        r.print(&format!("fsync=interval({}ms)", args.interval_ms));
    }
    if matches!(args.scenario, Scenario::All | Scenario::Recovery) {
        rt.block_on(recovery_run(&args, &tmp.path().join("recovery")))?;
    }
    Ok(())
}

fn options(args: &Args, dir: &Path, max_bytes: u64, fsync: Fsync) -> DiskQueueOptions {
    DiskQueueOptions {
        dir: dir.to_path_buf(),
        max_bytes,
        segment_size: args.segment_mib << 20,
        fsync,
    }
}

struct AppendResult {
    appends: u64,
    bytes: u64,
    elapsed: Duration,
    fsyncs: u64,
    latencies: Vec<Duration>,
}

impl AppendResult {
    fn print(mut self, label: &str) {
        self.latencies.sort_unstable();
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 * p) as usize).min(self.latencies.len().saturating_sub(1));
            self.latencies.get(i).copied().unwrap_or_default()
        };
        let secs = self.elapsed.as_secs_f64();
        println!(
            "{label:<22} {:>9.0} appends/s {:>8.1} MB/s   {:>7.1} fsyncs/s ({:.1} appends each)   latency p50 {:.2} ms, p99 {:.2} ms",
            self.appends as f64 / secs,
            self.bytes as f64 / secs / 1e6,
            self.fsyncs as f64 / secs,
            self.appends as f64 / self.fsyncs.max(1) as f64,
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
        );
    }
}

/// `appenders` tasks append for `seconds`; each record is acknowledged right
/// after its append (as a destination keeping up would), so segments are deleted.
async fn append_run(args: &Args, dir: &Path, fsync: Fsync) -> Result<AppendResult, QueueError> {
    let (q, _) = DiskQueue::open(options(args, dir, 1 << 30, fsync))?;
    let payload = Bytes::from((0..args.record_size).map(|i| (i * 7) as u8).collect::<Vec<u8>>());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.appenders {
        let (q, payload, stop) = (q.clone(), payload.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match q.append(1, payload.clone()).await {
                    Ok(r) => {
                        lat.push(t.elapsed());
                        q.ack(&[r.id]);
                    }
                    Err(QueueError::Full { .. }) => tokio::task::yield_now().await,
                    Err(e) => return Err(e),
                }
            }
            Ok(lat)
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(l)) => latencies.extend(l),
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(QueueError::InvalidOptions(format!("appender task failed: {e}"))),
        }
    }
    let elapsed = started.elapsed();
    let fsyncs = q.stats().fsyncs;
    q.close();
    let appends = latencies.len() as u64;
    Ok(AppendResult {
        appends,
        bytes: appends * args.record_size as u64,
        elapsed,
        fsyncs,
        latencies,
    })
}

/// Fills a queue of `recovery_mib` with unacknowledged records, closes it, and
/// times `open` (which reads and verifies every record).
async fn recovery_run(args: &Args, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let max_bytes = args.recovery_mib << 20;
    let fill = Instant::now();
    {
        let (q, _) = DiskQueue::open(options(args, dir, max_bytes, Fsync::Always))?;
        let payload = Bytes::from(vec![0x5au8; args.record_size]);
        let mut tasks = Vec::new();
        for _ in 0..args.appenders {
            let (q, payload) = (q.clone(), payload.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    match q.append(1, payload.clone()).await {
                        Ok(_) => {}
                        Err(QueueError::Full { .. }) => return Ok(()),
                        Err(e) => return Err(e),
                    }
                }
            }));
        }
        for t in tasks {
            t.await??;
        }
        let s = q.stats();
        println!(
            "recovery: filled {} records, {:.1} MiB on disk in {} segments, in {:.1} s",
            s.pending_records,
            s.disk_bytes as f64 / (1 << 20) as f64,
            s.segments,
            fill.elapsed().as_secs_f64()
        );
        q.close();
    }
    let mut runs = vec![("warm page cache", false)];
    if args.drop_caches {
        runs.push(("cold page cache", true));
    }
    for (label, cold) in runs {
        if cold {
            std::fs::write("/proc/sys/vm/drop_caches", "1")?;
        }
        let t = Instant::now();
        let (q, rec) = DiskQueue::open(options(args, dir, max_bytes, Fsync::Always))?;
        let wall = t.elapsed();
        let bytes: u64 = rec.records.iter().map(|r| u64::from(r.bytes)).sum();
        println!(
            "recovery ({label}): open took {:.3} s (Recovery::duration {:.3} s) for {} records, {:.1} MiB: {:.0} MB/s",
            wall.as_secs_f64(),
            rec.duration.as_secs_f64(),
            rec.records.len(),
            bytes as f64 / (1 << 20) as f64,
            bytes as f64 / wall.as_secs_f64() / 1e6,
        );
        q.close();
    }
    Ok(())
}
