//! Behaviour of the disk queue through its public API: round trips, restarts,
//! damaged files, limits.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use weir_queue::{DiskQueue, DiskQueueOptions, Fsync, QueueError, RecordId};

fn opts(dir: &Path, max_bytes: u64, segment_size: u64) -> DiskQueueOptions {
    DiskQueueOptions {
        dir: dir.to_path_buf(),
        max_bytes,
        segment_size,
        fsync: Fsync::Always,
    }
}

fn open(o: DiskQueueOptions) -> (DiskQueue, weir_queue::Recovery) {
    DiskQueue::open(o).expect("open")
}

/// A payload that names its own index, so a read-back proves which record it is.
fn payload(i: u64, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len.max(8));
    v.extend_from_slice(&i.to_le_bytes());
    while v.len() < len {
        v.push((i as usize + v.len()) as u8);
    }
    Bytes::from(v)
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn ids(rec: &weir_queue::Recovery) -> Vec<u64> {
    rec.records.iter().map(|r| r.id.0).collect()
}

/// Appends `n` records with payloads `payload(first + k, len)`, returning their ids.
async fn append_n(q: &DiskQueue, first: u64, n: u64, len: usize) -> Vec<u64> {
    let mut out = Vec::new();
    for k in 0..n {
        let r = q
            .append(k as u32 + 1, payload(first + k, len))
            .await
            .expect("append");
        assert_eq!(r.bytes as usize, len.max(8));
        out.push(r.id.0);
    }
    out
}

#[tokio::test]
async fn append_read_ack_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (q, rec) = open(opts(dir.path(), 1 << 20, 64 << 10));
    assert!(rec.records.is_empty());
    assert!(rec.corrupt_segments.is_empty());
    let a = q.append(3, Bytes::from_static(b"alpha")).await.expect("append");
    let b = q.append(5, Bytes::from_static(b"")).await.expect("append");
    let c = q.append(7, payload(9, 1000)).await.expect("append");
    assert!(a.id < b.id && b.id < c.id);
    assert_eq!((a.items, a.bytes), (3, 5));
    assert_eq!(q.read(a.id).expect("read"), Bytes::from_static(b"alpha"));
    assert!(q.read(b.id).expect("read").is_empty());
    assert_eq!(q.read(c.id).expect("read"), payload(9, 1000));
    let s = q.stats();
    assert_eq!(s.pending_records, 3);
    assert_eq!(s.pending_bytes, 1005);
    assert!(s.disk_bytes >= 1005 + 3 * 20);
    q.ack(&[a.id, a.id, RecordId(999_999)]);
    assert!(matches!(q.read(a.id), Err(QueueError::NotFound(id)) if id == a.id));
    assert!(matches!(q.read(RecordId(12345)), Err(QueueError::NotFound(_))));
    let s = q.stats();
    assert_eq!((s.pending_records, s.pending_bytes), (2, 1000));
    q.close();
    assert!(matches!(
        q.append(1, Bytes::from_static(b"x")).await,
        Err(QueueError::Closed)
    ));
    // Reads still work after close.
    assert_eq!(q.read(c.id).expect("read"), payload(9, 1000));
}

#[tokio::test]
async fn restart_keeps_exactly_the_unacked_records_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path(), 4 << 20, 16 << 10);
    let (q, _) = open(o.clone());
    let all = append_n(&q, 0, 300, 700).await;
    assert!(q.stats().segments > 5, "{:?}", q.stats());
    let acked: Vec<RecordId> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 0 || (100..180).contains(i))
        .map(|(_, &id)| RecordId(id))
        .collect();
    q.ack(&acked);
    let acked: BTreeSet<u64> = acked.iter().map(|r| r.0).collect();
    let expect: Vec<u64> = all.iter().copied().filter(|id| !acked.contains(id)).collect();
    drop(q);

    let (q, rec) = open(o.clone());
    assert_eq!(ids(&rec), expect);
    assert_eq!(rec.truncated_bytes, 0);
    assert!(rec.corrupt_segments.is_empty());
    for r in &rec.records {
        let k = all.iter().position(|&id| id == r.id.0).expect("known id") as u64;
        assert_eq!(q.read(r.id).expect("read"), payload(k, 700));
        assert_eq!(r.items as u64, k + 1);
        assert_eq!(r.bytes, 700);
    }
    assert_eq!(q.stats().pending_records, expect.len() as u64);
    let next = q.append(1, payload(0, 10)).await.expect("append");
    assert!(next.id.0 > *all.last().expect("some"));
    // Ack everything, reopen twice: nothing comes back and ids keep increasing.
    let mut everything: Vec<RecordId> = rec.records.iter().map(|r| r.id).collect();
    everything.push(next.id);
    q.ack(&everything);
    q.close();
    drop(q);
    let (q, rec) = open(o.clone());
    assert!(rec.records.is_empty());
    assert_eq!(q.stats().segments, 1);
    let later = q.append(1, payload(0, 10)).await.expect("append");
    assert!(later.id > next.id);
    drop(q);
    let (_q, rec) = open(o);
    assert_eq!(ids(&rec), vec![later.id.0]);
}

#[tokio::test]
async fn torn_tail_is_cut_off_and_earlier_records_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path(), 1 << 20, 64 << 10);
    let (q, _) = open(o.clone());
    let all = append_n(&q, 0, 5, 300).await;
    drop(q);
    let seg = segment_files(dir.path()).pop().expect("segment");
    let len = std::fs::metadata(&seg).expect("stat").len();
    // Cut the last record in the middle of its payload, as an interrupted write would.
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open")
        .set_len(len - 100)
        .expect("truncate");
    let (q, rec) = open(o.clone());
    assert_eq!(ids(&rec), all[..4].to_vec());
    assert_eq!(rec.truncated_bytes, 320 - 100);
    assert!(rec.corrupt_segments.is_empty());
    assert_eq!(std::fs::metadata(&seg).expect("stat").len(), len - 320);
    // The cut id is not handed out again.
    let next = q.append(1, payload(7, 300)).await.expect("append");
    assert!(next.id.0 > all[4]);
    drop(q);

    // A tail of zeros (file size extended, data never written before a power cut)
    // and a torn frame header are cut off the same way.
    let mut f = OpenOptions::new().append(true).open(&seg).expect("open");
    f.write_all(&[0u8; 4096]).expect("write");
    drop(f);
    let (q, rec) = open(o.clone());
    assert_eq!(rec.truncated_bytes, 4096);
    assert_eq!(rec.records.len(), 5);
    assert_eq!(q.read(next.id).expect("read"), payload(7, 300));
    drop(q);
    let mut f = OpenOptions::new().append(true).open(&seg).expect("open");
    f.write_all(&[1, 2, 3, 4, 5, 6, 7]).expect("write");
    drop(f);
    let (_q, rec) = open(o);
    assert_eq!(rec.truncated_bytes, 7);
    assert_eq!(rec.records.len(), 5);
}

/// Offset of the byte in the middle of the `k`-th record's payload.
fn payload_byte(k: u64, frame: u64) -> u64 {
    16 + k * frame + 20 + (frame - 20) / 2
}

fn flip(path: &Path, at: u64) {
    let mut data = std::fs::read(path).expect("read");
    data[at as usize] ^= 0x5a;
    std::fs::write(path, data).expect("write");
}

#[tokio::test]
async fn flipped_byte_moves_segment_aside_and_keeps_intact_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path(), 4 << 20, 16 << 10);
    let (q, _) = open(o.clone());
    // 980-byte payloads: 1000-byte frames, 16 per 16 KiB segment.
    let all = append_n(&q, 0, 60, 980).await;
    drop(q);
    let segs = segment_files(dir.path());
    assert!(segs.len() >= 3);
    // Damage record 5 of the first (sealed) segment.
    flip(&segs[0], payload_byte(5, 1000));
    let (q, rec) = open(o.clone());
    assert_eq!(rec.corrupt_segments.len(), 1);
    let moved = &rec.corrupt_segments[0];
    assert!(moved.starts_with(dir.path().join("corrupt")), "{moved:?}");
    assert!(moved.exists());
    assert_eq!(rec.lost_records_estimate, 1);
    let mut expect = all.clone();
    expect.remove(5);
    assert_eq!(ids(&rec), expect, "records before and after the damage are kept");
    for (k, &id) in all.iter().enumerate() {
        if k != 5 {
            assert_eq!(q.read(RecordId(id)).expect("read"), payload(k as u64, 980));
        }
    }
    drop(q);
    // The salvaged copy is clean: a second open finds no damage.
    let (_q, rec) = open(o);
    assert!(rec.corrupt_segments.is_empty());
    assert_eq!(ids(&rec), expect);
}

#[tokio::test]
async fn damage_inside_the_newest_segment_is_not_mistaken_for_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path(), 4 << 20, 64 << 10);
    let (q, _) = open(o.clone());
    let all = append_n(&q, 0, 10, 980).await;
    drop(q);
    let segs = segment_files(dir.path());
    assert_eq!(segs.len(), 1);
    // Intact records follow the damage, so it is not an interrupted write.
    flip(&segs[0], payload_byte(4, 1000));
    let (q, rec) = open(o.clone());
    assert_eq!(rec.corrupt_segments.len(), 1);
    assert_eq!(rec.truncated_bytes, 0);
    assert_eq!(rec.lost_records_estimate, 1);
    let mut expect = all.clone();
    expect.remove(4);
    assert_eq!(ids(&rec), expect);
    assert_eq!(q.read(RecordId(all[9])).expect("read"), payload(9, 980));
    // Appends go on in a new segment, with ids past every earlier one.
    let next = q.append(1, payload(50, 10)).await.expect("append");
    assert!(next.id.0 > all[9]);
    drop(q);
    let (_q, rec) = open(o);
    expect.push(next.id.0);
    assert_eq!(ids(&rec), expect);
    assert!(rec.corrupt_segments.is_empty());
}

#[tokio::test]
async fn damaged_header_and_short_sealed_segment_are_moved_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path(), 4 << 20, 16 << 10);
    let (q, _) = open(o.clone());
    let all = append_n(&q, 0, 48, 980).await;
    drop(q);
    let segs = segment_files(dir.path());
    assert!(segs.len() >= 3);
    // Header of segment 0 damaged: its records are still found and kept.
    flip(&segs[0], 2);
    // Segment 1 loses its last 1.5 records (a sealed segment that ends early).
    let len1 = std::fs::metadata(&segs[1]).expect("stat").len();
    OpenOptions::new()
        .write(true)
        .open(&segs[1])
        .expect("open")
        .set_len(len1 - 1500)
        .expect("truncate");
    let (_q, rec) = open(o);
    assert_eq!(rec.corrupt_segments.len(), 2);
    assert_eq!(rec.truncated_bytes, 0);
    assert_eq!(rec.lost_records_estimate, 2);
    let mut expect = all.clone();
    expect.drain(30..32);
    assert_eq!(ids(&rec), expect);
}

#[tokio::test]
async fn max_bytes_is_enforced_and_frees_up_when_acked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let max = 64 << 10;
    let (q, _) = open(opts(dir.path(), max, 1 << 30));
    let mut appended = Vec::new();
    let err = loop {
        match q.append(1, payload(0, 1000)).await {
            Ok(r) => appended.push(r.id),
            Err(e) => break e,
        }
        assert!(appended.len() < 1000, "never full");
    };
    let QueueError::Full {
        max_bytes,
        used_bytes,
        record_bytes,
        ..
    } = err
    else {
        panic!("expected Full, got {err}");
    };
    assert_eq!((max_bytes, record_bytes), (max, 1020));
    assert!(used_bytes + 1020 > max);
    let s = q.stats();
    // Segments are capped at max_bytes / 4.
    assert!(s.disk_bytes <= max + max / 4, "{s:?}");
    assert!(s.segments >= 4, "{s:?}");
    assert!(appended.len() >= 55, "{}", appended.len());
    // Delivering frees the space.
    q.ack(&appended);
    assert!(q.stats().disk_bytes < max / 4 + 1024, "{:?}", q.stats());
    let mut again = 0;
    while q.append(1, payload(0, 1000)).await.is_ok() {
        again += 1;
        assert!(again < 1000, "never full");
    }
    // The acked records still in the active segment count until it is deleted
    // at the next roll: at most one segment's worth less room.
    assert!(again + 16 >= appended.len(), "{again} vs {}", appended.len());
    assert!(q.stats().disk_bytes <= max + max / 4, "{:?}", q.stats());
    assert!(matches!(
        q.append(1, Bytes::from(vec![0u8; max as usize])).await,
        Err(QueueError::TooLarge { .. })
    ));
}

#[tokio::test]
async fn segments_roll_and_fully_acked_ones_are_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (q, _) = open(opts(dir.path(), 16 << 20, 10_000));
    let all = append_n(&q, 0, 50, 960).await;
    // 10 records per 10 000-byte segment: 5 segments, the last one active.
    assert_eq!(segment_files(dir.path()).len(), 5);
    assert_eq!(q.stats().segments, 5);
    // Acking most of segment 0 and all of segment 1 deletes only segment 1.
    q.ack(&all[0..9].iter().map(|&i| RecordId(i)).collect::<Vec<_>>());
    q.ack(&all[10..20].iter().map(|&i| RecordId(i)).collect::<Vec<_>>());
    assert_eq!(segment_files(dir.path()).len(), 4);
    q.ack(&[RecordId(all[9])]);
    assert_eq!(segment_files(dir.path()).len(), 3);
    // The active segment stays even when fully acked, until the writer rolls.
    q.ack(&all[20..].iter().map(|&i| RecordId(i)).collect::<Vec<_>>());
    assert_eq!(segment_files(dir.path()).len(), 1);
    let s = q.stats();
    assert_eq!((s.pending_records, s.segments), (0, 1));
    // A record larger than a segment gets one of its own.
    let big = q.append(1, payload(1, 30_000)).await.expect("append");
    assert_eq!(q.read(big.id).expect("read"), payload(1, 30_000));
    q.append(1, payload(2, 10)).await.expect("append");
    assert_eq!(segment_files(dir.path()).len(), 2);
}

#[tokio::test]
async fn lost_or_damaged_ack_file_redelivers_instead_of_losing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path(), 4 << 20, 64 << 10);
    let (q, _) = open(o.clone());
    let all = append_n(&q, 0, 20, 100).await;
    q.ack(&all[..10].iter().map(|&i| RecordId(i)).collect::<Vec<_>>());
    drop(q);
    std::fs::remove_file(dir.path().join("acks.log")).expect("remove");
    let (q, rec) = open(o.clone());
    assert_eq!(ids(&rec), all, "acked records come back (duplicates), none lost");
    q.ack(&all[..15].iter().map(|&i| RecordId(i)).collect::<Vec<_>>());
    drop(q);
    std::fs::write(dir.path().join("acks.log"), b"not an ack log at all, 32 bytes").expect("write");
    let (q, rec) = open(o.clone());
    assert_eq!(ids(&rec), all);
    // Ids stay unique even though the ack log (with its id floor) is gone.
    let next = q.append(1, payload(0, 1)).await.expect("append");
    assert!(next.id.0 > *all.last().expect("some"));
}

#[tokio::test]
async fn interval_fsync_groups_concurrent_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = opts(dir.path(), 64 << 20, 1 << 20);
    o.fsync = Fsync::Interval(Duration::from_millis(5));
    let (q, _) = open(o.clone());
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for k in 0..50u64 {
                let r = q.append(1, payload(t * 1000 + k, 2000)).await.expect("append");
                ids.push((r.id, t * 1000 + k));
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    assert_eq!(all.len(), 400);
    // Group commit: far fewer syncs than appends.
    let fsyncs = q.stats().fsyncs;
    assert!(fsyncs > 0 && fsyncs < 200, "{fsyncs} fsyncs for 400 appends");
    for (id, k) in &all {
        assert_eq!(q.read(*id).expect("read"), payload(*k, 2000));
    }
    drop(q);
    let (_q, rec) = open(o);
    let mut expect: Vec<u64> = all.iter().map(|(id, _)| id.0).collect();
    expect.sort_unstable();
    assert_eq!(ids(&rec), expect);
}

#[tokio::test]
async fn one_process_per_directory_and_bad_options_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path(), 1 << 20, 64 << 10);
    let (q, _) = open(o.clone());
    let err = DiskQueue::open(o.clone()).expect_err("second open");
    assert!(matches!(err, QueueError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("queue.directory"));
    q.close();
    // close() releases the lock even while clones are alive.
    let (_q2, _) = open(o.clone());
    let mut small = o.clone();
    small.dir = dir.path().join("other");
    small.max_bytes = 100;
    assert!(matches!(
        DiskQueue::open(small),
        Err(QueueError::InvalidOptions(_))
    ));
    let meta = std::fs::metadata(dir.path()).expect("stat");
    assert!(meta.is_dir());
}

#[tokio::test]
async fn new_directory_is_private_and_newer_format_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let qdir = dir.path().join("a/b/queue");
    let o = opts(&qdir, 1 << 20, 64 << 10);
    let (q, _) = open(o.clone());
    append_n(&q, 0, 2, 10).await;
    drop(q);
    let mode = std::fs::metadata(&qdir).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    // A header of format version 2 (with a valid checksum) is not damage.
    let seg = segment_files(&qdir).pop().expect("segment");
    let mut data = std::fs::read(&seg).expect("read");
    data[8..12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32(&data[..12]);
    data[12..16].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&seg, data).expect("write");
    let err = DiskQueue::open(o).expect_err("newer format");
    assert!(
        matches!(err, QueueError::UnsupportedVersion { found: 2, .. }),
        "{err}"
    );
}

/// crc32 (IEEE), bitwise: the test does not lean on the crate's own implementation.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test]
async fn a_salvage_interrupted_by_a_crash_is_completed_or_discarded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path(), 4 << 20, 16 << 10);
    let (q, _) = open(o.clone());
    let all = append_n(&q, 0, 40, 980).await;
    drop(q);
    let segs = segment_files(dir.path());
    let salvage = |p: &Path| PathBuf::from(format!("{}.salvage", p.display()));
    // Crash before the damaged original was moved aside: the salvage copy may be
    // incomplete, so it is discarded and the original scanned again.
    std::fs::write(salvage(&segs[0]), b"half a salvage").expect("write");
    let (q, rec) = open(o.clone());
    assert_eq!(ids(&rec), all);
    assert!(!salvage(&segs[0]).exists());
    drop(q);
    // Crash after the original was moved aside: the (synced) salvage copy is
    // complete and takes its place.
    std::fs::rename(&segs[1], salvage(&segs[1])).expect("rename");
    let (_q, rec) = open(o);
    assert_eq!(ids(&rec), all);
    assert!(segs[1].exists() && !salvage(&segs[1]).exists());
}

#[test]
fn the_queue_and_its_futures_can_be_shared_across_tasks() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    fn send<T: Send>(_: &T) {}
    shareable::<DiskQueue>();
    let dir = tempfile::tempdir().expect("tempdir");
    let (q, _) = open(opts(dir.path(), 1 << 20, 64 << 10));
    let fut = q.append(1, Bytes::from_static(b"x"));
    send(&fut);
}

#[tokio::test]
async fn a_complete_last_record_failing_its_checksum_is_damage_not_a_torn_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path(), 4 << 20, 64 << 10);
    let (q, _) = open(o.clone());
    let all = append_n(&q, 0, 6, 980).await;
    drop(q);
    let seg = segment_files(dir.path()).pop().expect("segment");
    // The last record was acknowledged (synced), then the disk flipped a bit.
    flip(&seg, payload_byte(5, 1000));
    let (_q, rec) = open(o);
    assert_eq!(rec.truncated_bytes, 0);
    assert_eq!(rec.corrupt_segments.len(), 1);
    assert_eq!(rec.lost_records_estimate, 1);
    assert_eq!(ids(&rec), all[..5].to_vec());
}
