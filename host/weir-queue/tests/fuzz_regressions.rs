//! Inputs the `queue_segments` fuzz target (fuzz/, docs/fuzzing.md) found,
//! replayed through `DiskQueue::open` the way the target lays them out:
//! chunks `[kind u8][base u8][len u16 LE][bytes]`, an even kind a segment
//! `<base>.seg`, an odd one `acks.log`.

use weir_queue::{DiskQueue, DiskQueueOptions, Fsync};

fn open_files(input: &[u8]) -> (tempfile::TempDir, DiskQueue, weir_queue::Recovery) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rest = input;
    while let [kind, base, l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*l0, *l1])).min(tail.len());
        let (body, next) = tail.split_at(len);
        let name = if kind % 2 == 0 {
            format!("{base:020}.seg")
        } else {
            "acks.log".to_string()
        };
        std::fs::write(dir.path().join(name), body).expect("write");
        rest = next;
    }
    let (queue, recovery) = DiskQueue::open(DiskQueueOptions {
        dir: dir.path().to_path_buf(),
        max_bytes: 1 << 20,
        segment_size: 64 << 10,
        fsync: Fsync::Always,
    })
    .expect("damaged data never makes open fail");
    (dir, queue, recovery)
}

/// Segment 0 (damaged header) held an intact frame with id 5 although
/// segment 1 starts at id 1: recovery reported record 5, and reading it
/// looked in segment 1 and failed with "not found". Ids past the next
/// segment's base are now damage.
#[test]
fn a_record_past_the_next_segments_base_is_not_recovered_unreadable() {
    let input = include_bytes!("../../../fuzz/regressions/queue_segments/record-past-next-segment-base");
    let (_dir, queue, recovery) = open_files(input);
    assert!(!recovery.records.is_empty());
    for r in &recovery.records {
        let payload = queue
            .read(r.id)
            .unwrap_or_else(|e| panic!("recovered record {} does not read back: {e}", r.id));
        assert_eq!(payload.len() as u64, u64::from(r.bytes));
    }
    assert!(recovery.records.iter().all(|r| r.id.0 != 5), "{recovery:?}");
    queue.close();
}
