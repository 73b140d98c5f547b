//! The persistent queue's recovery: segment and ack-log files as found on
//! disk after a crash or disk damage, read by `weir_queue::DiskQueue::open`
//! (header checks, frame walk, checksums, torn-tail cut, salvage of damaged
//! segments, ack runs).
//!
//! Input: up to 4 chunks `[kind u8][base u8][len u16 LE][len bytes]`; kind
//! even = segment file `<base, 20 digits>.seg`, odd = `acks.log`. The files
//! are written to a fresh directory (under /dev/shm when it exists, so fsync is
//! cheap) and the queue is opened. It must open unless a segment claims a newer
//! format; every record it recovers must read back; an append after recovery
//! must get an id above every recovered one and survive a reopen.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use weir_queue::{DiskQueue, DiskQueueOptions, Fsync, QueueError};

fn root() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        base.join(format!("weir-fuzz-queue-{}", std::process::id()))
    })
}

fn options(dir: &std::path::Path) -> DiskQueueOptions {
    DiskQueueOptions {
        dir: dir.to_path_buf(),
        max_bytes: 1 << 20,
        segment_size: 64 << 10,
        fsync: Fsync::Always,
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = root().join("q");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the queue directory");
    let mut rest = data;
    for _ in 0..4 {
        let [kind, base, l0, l1, tail @ ..] = rest else {
            break;
        };
        let len = usize::from(u16::from_le_bytes([*l0, *l1])).min(tail.len());
        let (body, next) = tail.split_at(len);
        let name = if kind % 2 == 0 {
            format!("{:020}.seg", base)
        } else {
            "acks.log".to_string()
        };
        std::fs::write(dir.join(name), body).expect("write a queue file");
        rest = next;
    }

    let (queue, recovery) = match DiskQueue::open(options(&dir)) {
        Ok(q) => q,
        Err(QueueError::UnsupportedVersion { .. }) => return,
        Err(e) => panic!("damaged data made open fail: {e}"),
    };
    let mut last = 0;
    for r in &recovery.records {
        assert!(r.id.0 >= last, "recovered records out of id order");
        last = r.id.0;
        let payload = queue
            .read(r.id)
            .unwrap_or_else(|e| panic!("recovered record {} does not read back: {e}", r.id));
        assert_eq!(payload.len() as u64, u64::from(r.bytes));
    }
    let appended = futures::executor::block_on(queue.append(1, Bytes::from_static(b"after")))
        .unwrap_or_else(|e| panic!("append after recovery failed: {e}"));
    if let Some(r) = recovery.records.last() {
        assert!(appended.id > r.id, "id {} reused after recovery", appended.id);
    }
    queue.close();
    drop(queue);

    let (again, second) = DiskQueue::open(options(&dir)).expect("reopen after close");
    let found = second.records.iter().find(|r| r.id == appended.id);
    assert!(
        found.is_some(),
        "the record appended after recovery is lost on reopen"
    );
    for r in &recovery.records {
        assert!(
            second.records.iter().any(|s| s.id == r.id),
            "record {} recovered at the first open is gone at the second",
            r.id
        );
    }
    assert_eq!(again.read(appended.id).expect("read it back").as_ref(), b"after");
    again.close();
});
