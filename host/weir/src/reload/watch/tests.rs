use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::atomic_writer::{ConfigMapVolume, TempDir};
use super::*;

/// Generous against a loaded CI machine; the tests' debounce is 200 ms (the
/// default is shorter), so that a burst 15 ms apart stays one burst under load.
const WITHIN: Duration = Duration::from_secs(2);
/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_millis(1500);

/// A valid config using one plugin at `plugin_path`; `version` goes into a
/// comment, so each version has different bytes but the same meaning.
fn config(plugin_path: &str, version: u32) -> Vec<u8> {
    format!(
        r#"# version {version}
[receivers.otlp]
type = "otlp"
grpc = {{ address = "127.0.0.1:4317" }}

[plugins.redact]
path = "{plugin_path}"

[exporters.console]
type = "console"

[pipelines.traces]
receivers = ["otlp"]
plugins = ["redact"]
exporters = ["console"]
"#
    )
    .into_bytes()
}

fn options(plugin_base: &Path) -> WatchOptions {
    WatchOptions {
        plugin_base_dir: plugin_base.to_path_buf(),
        debounce: Duration::from_millis(200),
        ..WatchOptions::default()
    }
}

fn start(volume: &ConfigMapVolume, options: WatchOptions) -> (ConfigWatcher, mpsc::Receiver<Trigger>) {
    let path = volume.file("weir.toml");
    let running = content_hash_from(&path, &options.plugin_base_dir);
    let (tx, rx) = mpsc::channel(8);
    let watcher = ConfigWatcher::start(path, running, options, tx).unwrap();
    (watcher, rx)
}

async fn next(rx: &mut mpsc::Receiver<Trigger>, within: Duration) -> Option<Trigger> {
    tokio::time::timeout(within, rx.recv()).await.ok().flatten()
}

#[test]
fn hash_covers_config_and_referenced_plugin_bytes() {
    let dir = TempDir::new("hash").unwrap();
    let path = dir.path().join("weir.toml");
    std::fs::write(&path, config("redact.wasm", 1)).unwrap();
    std::fs::write(dir.path().join("redact.wasm"), b"plugin v1").unwrap();

    let snap = hash::snapshot(&path, dir.path());
    assert_eq!(snap.plugin_files, vec![dir.path().join("redact.wasm")]);
    assert_eq!(snap.hash, content_hash_from(&path, dir.path()), "deterministic");
    assert_eq!(snap.hash.as_str().len(), 64);
    assert_eq!(snap.hash.short(), &snap.hash.as_str()[..12]);

    std::fs::write(dir.path().join("redact.wasm"), b"plugin v2").unwrap();
    let plugin_changed = content_hash_from(&path, dir.path());
    assert_ne!(plugin_changed, snap.hash);

    // Resolved against the base given, not the config's directory.
    let elsewhere = TempDir::new("hash-base").unwrap();
    std::fs::write(elsewhere.path().join("redact.wasm"), b"plugin v2").unwrap();
    assert_eq!(content_hash_from(&path, elsewhere.path()), plugin_changed);

    // A missing plugin is a marker, not a panic, and differs from any bytes.
    std::fs::remove_file(dir.path().join("redact.wasm")).unwrap();
    let missing = content_hash_from(&path, dir.path());
    assert_ne!(missing, plugin_changed);
    assert_ne!(missing, snap.hash);
}

#[test]
fn broken_or_missing_config_still_hashes() {
    let dir = TempDir::new("broken").unwrap();
    let path = dir.path().join("weir.toml");
    let missing = content_hash(&path);
    std::fs::write(&path, b"[pipelines.traces\nbroken = ").unwrap();
    let broken = content_hash(&path);
    assert!(hash::snapshot(&path, dir.path()).plugin_files.is_empty());
    std::fs::write(&path, b"[pipelines.traces\nbroken = 2").unwrap();
    let broken_again = content_hash(&path);
    assert_ne!(missing, broken);
    assert_ne!(broken, broken_again);
}

#[tokio::test]
async fn configmap_change_triggers_once() {
    let mut volume = ConfigMapVolume::create(&[("weir.toml", &config("redact.wasm", 1))]).unwrap();
    let (_watcher, mut rx) = start(&volume, options(volume.path()));

    let changed = Instant::now();
    volume
        .update(&[("weir.toml", &config("redact.wasm", 2))])
        .unwrap();
    let trigger = next(&mut rx, WITHIN).await.expect("a trigger after the swap");
    let latency = changed.elapsed();
    assert_eq!(trigger.reason, REASON_WATCH);
    assert_eq!(
        trigger.hash,
        content_hash_from(&volume.file("weir.toml"), volume.path())
    );
    assert!(latency >= Duration::from_millis(200), "debounced: {latency:?}");
    eprintln!("swap -> trigger: {latency:?}");
    assert_eq!(next(&mut rx, QUIET).await, None, "one swap, one trigger");
}

#[tokio::test]
async fn identical_rewrite_is_reported_as_unchanged_once() {
    let mut volume = ConfigMapVolume::create(&[("weir.toml", &config("redact.wasm", 1))]).unwrap();
    let path = volume.file("weir.toml");
    let running = content_hash_from(&path, volume.path());
    let (_watcher, mut rx) = start(&volume, options(volume.path()));

    volume
        .update(&[("weir.toml", &config("redact.wasm", 1))])
        .unwrap();
    let trigger = next(&mut rx, WITHIN).await.expect("the rewrite is reported");
    assert!(!trigger.changed, "{trigger:?}");
    assert_eq!(trigger.hash, running);
    assert_eq!(next(&mut rx, QUIET).await, None, "and only once");
}

#[tokio::test]
async fn burst_of_swaps_triggers_once_with_the_final_hash() {
    let mut volume = ConfigMapVolume::create(&[("weir.toml", &config("redact.wasm", 1))]).unwrap();
    let (_watcher, mut rx) = start(&volume, options(volume.path()));

    let burst = Instant::now();
    for version in 2..=6 {
        volume
            .update(&[("weir.toml", &config("redact.wasm", version))])
            .unwrap();
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    assert!(
        burst.elapsed() < Duration::from_millis(200),
        "the burst is within the debounce"
    );
    let trigger = next(&mut rx, WITHIN).await.expect("a trigger after the burst");
    assert_eq!(
        trigger.hash,
        content_hash_from(&volume.file("weir.toml"), volume.path())
    );
    // The hash is of content only, so version 6 written elsewhere hashes the same.
    let expected_dir = TempDir::new("final").unwrap();
    let expected = expected_dir.path().join("weir.toml");
    std::fs::write(&expected, config("redact.wasm", 6)).unwrap();
    assert_eq!(
        trigger.hash,
        content_hash_from(&expected, volume.path()),
        "the hash of version 6"
    );
    assert_eq!(next(&mut rx, QUIET).await, None, "one burst, one trigger");
}

#[tokio::test]
async fn plugin_change_inside_the_configmap_triggers() {
    let toml = config("redact.wasm", 1);
    let mut volume = ConfigMapVolume::create(&[("weir.toml", &toml), ("redact.wasm", b"plugin v1")]).unwrap();
    let (_watcher, mut rx) = start(&volume, options(volume.path()));

    volume
        .update(&[("weir.toml", &toml), ("redact.wasm", b"plugin v2")])
        .unwrap();
    let trigger = next(&mut rx, WITHIN).await.expect("a trigger for the plugin");
    assert_eq!(trigger.reason, REASON_WATCH);
    assert_eq!(
        trigger.hash,
        content_hash_from(&volume.file("weir.toml"), volume.path())
    );
    assert_eq!(next(&mut rx, QUIET).await, None);
}

#[tokio::test]
async fn plugin_change_in_another_directory_triggers() {
    let other = TempDir::new("plugins").unwrap();
    let plugin_dir = other.path().join("plugins");
    std::fs::create_dir(&plugin_dir).unwrap();
    let plugin = plugin_dir.join("redact.wasm");
    std::fs::write(&plugin, b"plugin v1").unwrap();
    let volume =
        ConfigMapVolume::create(&[("weir.toml", &config(&plugin.display().to_string(), 1))]).unwrap();
    let (_watcher, mut rx) = start(&volume, options(volume.path()));

    std::fs::write(&plugin, b"plugin v2").unwrap();
    let trigger = next(&mut rx, WITHIN).await.expect("a trigger for the plugin");
    assert_eq!(trigger.reason, REASON_WATCH, "the 10 s poll is not due yet");
    assert_eq!(
        trigger.hash,
        content_hash_from(&volume.file("weir.toml"), volume.path())
    );
    assert_eq!(next(&mut rx, QUIET).await, None);
}

#[tokio::test]
async fn poll_finds_a_change_without_filesystem_events() {
    let mut volume = ConfigMapVolume::create(&[("weir.toml", &config("redact.wasm", 1))]).unwrap();
    let poll = Duration::from_millis(300);
    let opts = WatchOptions {
        filesystem_events: false,
        poll_interval: poll,
        ..options(volume.path())
    };
    let (_watcher, mut rx) = start(&volume, opts);

    let changed = Instant::now();
    volume
        .update(&[("weir.toml", &config("redact.wasm", 2))])
        .unwrap();
    let trigger = next(&mut rx, WITHIN).await.expect("the poll finds the change");
    let latency = changed.elapsed();
    assert_eq!(trigger.reason, REASON_POLL);
    assert!(
        latency < poll + Duration::from_millis(200),
        "within one poll: {latency:?}"
    );
    assert_eq!(
        next(&mut rx, Duration::from_secs(1)).await,
        None,
        "polls of unchanged content are quiet"
    );
}

#[tokio::test]
async fn content_changed_before_start_triggers_at_once() {
    let mut volume = ConfigMapVolume::create(&[("weir.toml", &config("redact.wasm", 1))]).unwrap();
    let path = volume.file("weir.toml");
    let running = content_hash_from(&path, volume.path());
    volume
        .update(&[("weir.toml", &config("redact.wasm", 2))])
        .unwrap();
    let (tx, mut rx) = mpsc::channel(8);
    let _watcher = ConfigWatcher::start(path, running, options(volume.path()), tx).unwrap();

    let trigger = next(&mut rx, WITHIN)
        .await
        .expect("the first check reports the change");
    assert_eq!(trigger.reason, REASON_POLL);
}

#[tokio::test]
async fn stop_ends_the_thread_promptly() {
    let volume = ConfigMapVolume::create(&[("weir.toml", &config("redact.wasm", 1))]).unwrap();
    let (watcher, mut rx) = start(&volume, options(volume.path()));
    let stopping = Instant::now();
    watcher.stop();
    assert!(
        stopping.elapsed() < Duration::from_secs(1),
        "not waiting for the 10 s poll"
    );
    // The thread dropped its sender: the channel is closed, not just empty.
    assert_eq!(rx.recv().await, None);
}

#[tokio::test]
async fn a_full_channel_delays_the_trigger_instead_of_losing_it() {
    let mut volume = ConfigMapVolume::create(&[("weir.toml", &config("redact.wasm", 1))]).unwrap();
    let path = volume.file("weir.toml");
    let running = content_hash_from(&path, volume.path());
    let (tx, mut rx) = mpsc::channel(1);
    let occupant = Trigger {
        hash: running.clone(),
        reason: REASON_POLL,
        changed: true,
    };
    tx.try_send(occupant.clone()).unwrap();
    let _watcher = ConfigWatcher::start(path.clone(), running, options(volume.path()), tx).unwrap();

    volume
        .update(&[("weir.toml", &config("redact.wasm", 2))])
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rx.recv().await, Some(occupant));
    let trigger = next(&mut rx, WITHIN)
        .await
        .expect("the trigger, once there is room");
    assert_eq!(trigger.reason, REASON_WATCH, "the retry keeps the reason");
    assert_eq!(trigger.hash, content_hash_from(&path, volume.path()));
    assert_eq!(next(&mut rx, QUIET).await, None);
}
