//! Opening a queue directory: scan every segment, verify every record, cut torn
//! tails, move damaged files aside (keeping their intact records), apply the
//! ack log, and pick the segment to append to. See the crate docs for the rules.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::ack_log::{self, AckFileState, AckLog, LoadedAcks};
use crate::error::{QueueError, io_err};
use crate::format::{
    ACK_TMP_FILE, CORRUPT_DIR, FORMAT_VERSION, FRAME_HEADER_LEN, FrameHeader, HeaderCheck, SALVAGE_SUFFIX,
    SEGMENT_HEADER_LEN, SEGMENT_SUFFIX, check_segment_header, parse_segment_file_name, record_crc,
    segment_file_name, segment_header,
};
use crate::fsutil::{move_aside, sync_dir};
use crate::state::{RecordMeta, Segment};
use crate::writer::Active;
use crate::{Record, RecordId, Recovery};

/// Reads during the scan come in chunks of this size.
const READ_CHUNK: usize = 1 << 20;
/// After damage, a frame is accepted as the next intact one only if its id is at
/// most this far past the last intact id: random bytes almost never pass, so the
/// byte-by-byte search stays cheap.
const RESYNC_ID_WINDOW: u64 = 1 << 20;

pub(crate) struct Recovered {
    pub segments: BTreeMap<u64, Segment>,
    pub active: Active,
    pub next_id: u64,
    pub ack_log: AckLog,
    pub recovery: Recovery,
}

pub(crate) fn recover(dir: &Path) -> Result<Recovered, QueueError> {
    let started = Instant::now();
    finish_interrupted_salvage(dir)?;
    let bases = list_segments(dir)?;
    let acks = ack_log::load(dir)?;
    report_ack_file(dir, &acks, bases.len());

    let mut report = Recovery::default();
    let mut segments = BTreeMap::new();
    // One past the highest id any file shows; ids are never handed out twice.
    let mut id_end = acks.end().max(acks.id_floor);
    let mut reusable_newest = None;
    for (i, &base) in bases.iter().enumerate() {
        let newest = i + 1 == bases.len();
        let path = dir.join(segment_file_name(base));
        id_end = id_end.max(base);
        // A segment holds the ids from its base up to the next segment's base.
        let end = bases.get(i + 1).copied().unwrap_or(u64::MAX);
        let scan = scan_segment(&path, base, end)?;
        if let Some(last) = scan.records.last() {
            id_end = id_end.max(last.id + 1);
        }
        match classify(&scan, newest) {
            Verdict::Clean => {
                let seg = make_segment(base, path, scan.file_len, scan.records, &acks)?;
                if newest {
                    reusable_newest = Some(base);
                }
                segments.insert(base, seg);
            }
            Verdict::TornTail { valid_end } => {
                truncate(&path, valid_end)?;
                let cut = scan.file_len - valid_end;
                tracing::warn!(path = %path.display(), bytes = cut, offset = valid_end,
                    "disk queue: cut off a partly written record at the end of the newest segment (never acknowledged)");
                report.truncated_bytes += cut;
                let seg = make_segment(base, path, valid_end, scan.records, &acks)?;
                reusable_newest = Some(base);
                segments.insert(base, seg);
            }
            Verdict::TornHeader => {
                std::fs::remove_file(&path).map_err(io_err(&path, "remove"))?;
                tracing::warn!(path = %path.display(), bytes = scan.file_len,
                    "disk queue: removed a newest segment whose header was never completely written");
                report.truncated_bytes += scan.file_len;
            }
            Verdict::Corrupt { reason } => {
                let mut lost = scan.lost_estimate;
                if scan.tail_damaged {
                    let have_end = scan.records.last().map_or(base, |r| r.id + 1);
                    // A sealed segment ends where the next begins; the newest at
                    // least lost the complete frame that failed its checksum.
                    let expected_end = match bases.get(i + 1) {
                        Some(&next) => next,
                        None if !scan.first_damage_is_torn_write => have_end + 1,
                        None => have_end,
                    };
                    lost += expected_end.saturating_sub(have_end);
                }
                let (moved, salvaged) = salvage(dir, &path, base, &scan.records, &acks)?;
                tracing::error!(
                    path = %path.display(), moved_to = %moved.display(), %reason,
                    intact_records = scan.records.len(), lost_records_estimate = lost,
                    "disk queue: damaged segment moved aside; its intact unacknowledged records are kept"
                );
                report.corrupt_segments.push(moved);
                report.lost_records_estimate += lost;
                if let Some(seg) = salvaged {
                    segments.insert(base, seg);
                }
            }
        }
    }

    // Fully delivered segments are not needed; the newest is kept if it will be
    // appended to.
    let done: Vec<u64> = segments
        .values()
        .filter(|s| s.unacked == 0 && Some(s.base) != reusable_newest)
        .map(|s| s.base)
        .collect();
    for base in done {
        if let Some(seg) = segments.remove(&base) {
            std::fs::remove_file(&seg.path).map_err(io_err(&seg.path, "remove delivered segment"))?;
        }
    }

    let active = match reusable_newest.and_then(|b| segments.get(&b)) {
        Some(seg) => {
            let file = OpenOptions::new()
                .append(true)
                .open(&seg.path)
                .map_err(io_err(&seg.path, "open for appending"))?;
            Active {
                base: seg.base,
                path: seg.path.clone(),
                file,
                size: seg.size,
                records: seg.records.len(),
            }
        }
        None => {
            let (active, seg) = Active::create(dir, id_end)?;
            segments.insert(seg.base, seg);
            active
        }
    };

    let acked_ids = segments
        .values()
        .flat_map(|s| s.records.iter())
        .filter(|r| r.acked)
        .map(|r| r.id);
    let ack_log = AckLog::rewrite(dir, id_end, &ack_log::runs(acked_ids), true)?;
    sync_dir(dir)?;

    report.records = segments
        .values()
        .flat_map(|s| s.records.iter())
        .filter(|r| !r.acked)
        .map(|r| Record {
            id: RecordId(r.id),
            items: r.items,
            bytes: r.len,
        })
        .collect();
    report.duration = started.elapsed();
    tracing::info!(
        dir = %dir.display(),
        records = report.records.len(),
        segments = segments.len(),
        corrupt_segments = report.corrupt_segments.len(),
        lost_records_estimate = report.lost_records_estimate,
        truncated_bytes = report.truncated_bytes,
        duration_ms = report.duration.as_millis() as u64,
        "disk queue opened"
    );
    Ok(Recovered {
        segments,
        active,
        next_id: id_end,
        ack_log,
        recovery: report,
    })
}

fn report_ack_file(dir: &Path, acks: &LoadedAcks, segments: usize) {
    match &acks.state {
        AckFileState::Intact => {}
        AckFileState::Missing if segments == 0 => {}
        AckFileState::Missing => tracing::warn!(
            dir = %dir.display(),
            "disk queue: acks.log is missing; every record on disk counts as undelivered and is delivered again"
        ),
        AckFileState::Damaged {
            valid_bytes,
            file_bytes,
        } => {
            // A torn last entry is the normal result of a crash: acks are written without fsync.
            tracing::warn!(
                dir = %dir.display(), valid_bytes, file_bytes,
                "disk queue: acks.log is damaged or torn past the valid bytes; records acknowledged there are delivered again"
            )
        }
    }
}

/// Completes or discards a salvage that a crash interrupted: a `.salvage` file is
/// synced before the damaged original is moved aside, so it is complete if the
/// original is gone, and incomplete otherwise.
fn finish_interrupted_salvage(dir: &Path) -> Result<(), QueueError> {
    let _ = std::fs::remove_file(dir.join(ACK_TMP_FILE));
    for entry in std::fs::read_dir(dir).map_err(io_err(dir, "list"))? {
        let entry = entry.map_err(io_err(dir, "list"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(SALVAGE_SUFFIX) else {
            continue;
        };
        let salvage = entry.path();
        let original = dir.join(format!("{stem}{SEGMENT_SUFFIX}"));
        if original.exists() {
            std::fs::remove_file(&salvage).map_err(io_err(&salvage, "remove"))?;
        } else {
            std::fs::rename(&salvage, &original).map_err(io_err(&salvage, "rename"))?;
        }
    }
    Ok(())
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, QueueError> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir, "list"))? {
        let entry = entry.map_err(io_err(dir, "list"))?;
        if let Some(base) = parse_segment_file_name(&entry.file_name().to_string_lossy()) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

fn truncate(path: &Path, len: u64) -> Result<(), QueueError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path, "open"))?;
    f.set_len(len).map_err(io_err(path, "truncate"))?;
    f.sync_data().map_err(io_err(path, "fdatasync"))
}

fn make_segment(
    base: u64,
    path: PathBuf,
    size: u64,
    mut records: Vec<RecordMeta>,
    acks: &LoadedAcks,
) -> Result<Segment, QueueError> {
    let reader = File::open(&path).map_err(io_err(&path, "open"))?;
    let mut seg = Segment::new(base, path, reader, size);
    for r in &mut records {
        r.acked = acks.contains(r.id);
    }
    seg.unacked = records.iter().filter(|r| !r.acked).count();
    seg.records = records;
    Ok(seg)
}

/// Moves a damaged segment to `corrupt/`, first copying its intact unacknowledged
/// records into a fresh file of the same name. Returns the moved-to path and the
/// replacement segment, if any records were worth keeping.
fn salvage(
    dir: &Path,
    path: &Path,
    base: u64,
    records: &[RecordMeta],
    acks: &LoadedAcks,
) -> Result<(PathBuf, Option<Segment>), QueueError> {
    let keep: Vec<&RecordMeta> = records.iter().filter(|r| !acks.contains(r.id)).collect();
    let corrupt_dir = dir.join(CORRUPT_DIR);
    if keep.is_empty() {
        let moved = move_aside(path, &corrupt_dir)?;
        sync_dir(dir)?;
        return Ok((moved, None));
    }
    let tmp = dir.join(format!(
        "{}{SALVAGE_SUFFIX}",
        segment_file_name(base).trim_end_matches(SEGMENT_SUFFIX)
    ));
    let src = File::open(path).map_err(io_err(path, "open"))?;
    let mut out = Vec::new();
    let mut kept = Vec::with_capacity(keep.len());
    {
        let mut f = File::create(&tmp).map_err(io_err(&tmp, "create"))?;
        f.write_all(&segment_header()).map_err(io_err(&tmp, "write"))?;
        let mut offset = SEGMENT_HEADER_LEN;
        for r in keep {
            let frame = FRAME_HEADER_LEN + r.len as usize;
            out.resize(frame, 0);
            src.read_exact_at(&mut out, r.offset)
                .map_err(io_err(path, "read"))?;
            f.write_all(&out).map_err(io_err(&tmp, "write"))?;
            kept.push(RecordMeta { offset, ..*r });
            offset += frame as u64;
        }
        f.sync_data().map_err(io_err(&tmp, "fdatasync"))?;
    }
    let moved = move_aside(path, &corrupt_dir)?;
    std::fs::rename(&tmp, path).map_err(io_err(&tmp, "rename salvaged segment"))?;
    sync_dir(dir)?;
    let size = std::fs::metadata(path).map_err(io_err(path, "stat"))?.len();
    let seg = make_segment(base, path.to_path_buf(), size, kept, acks)?;
    Ok((moved, Some(seg)))
}

/// What a scan of one segment found.
#[derive(Debug)]
pub(crate) struct Scan {
    pub file_len: u64,
    pub header: HeaderCheck,
    /// Every intact frame, in file order.
    pub records: Vec<RecordMeta>,
    /// Where the first damage starts (`Some(0)` for a damaged header).
    pub first_damage: Option<u64>,
    /// An intact frame was found after the first damage.
    pub resynced: bool,
    /// Ids skipped over where the scan found intact frames again.
    pub lost_estimate: u64,
    /// The file does not end with an intact frame.
    pub tail_damaged: bool,
    /// The first damage looks like an interrupted append: the frame there runs
    /// past the end of the file, or only zeros follow (space allocated, data never
    /// written). A complete frame failing its checksum does not.
    pub first_damage_is_torn_write: bool,
}

enum Verdict {
    Clean,
    /// Only the newest segment's end is damaged: an interrupted write.
    TornTail {
        valid_end: u64,
    },
    /// The newest segment is shorter than its header: creation was interrupted.
    TornHeader,
    Corrupt {
        reason: String,
    },
}

fn classify(scan: &Scan, newest: bool) -> Verdict {
    if scan.file_len < SEGMENT_HEADER_LEN {
        return if newest {
            Verdict::TornHeader
        } else {
            Verdict::Corrupt {
                reason: format!("{} bytes, shorter than a segment header", scan.file_len),
            }
        };
    }
    if scan.header != HeaderCheck::Ok {
        return Verdict::Corrupt {
            reason: "damaged segment header".into(),
        };
    }
    match scan.first_damage {
        None => Verdict::Clean,
        Some(at) if newest && !scan.resynced && scan.first_damage_is_torn_write => {
            Verdict::TornTail { valid_end: at }
        }
        Some(at) => Verdict::Corrupt {
            reason: format!("invalid record frame at offset {at}"),
        },
    }
}

/// Positional reads through a reused buffer.
struct Window {
    file: File,
    len: u64,
    start: u64,
    buf: Vec<u8>,
}

impl Window {
    /// `pos + n` must not pass the end of the file.
    fn get(&mut self, pos: u64, n: usize) -> std::io::Result<&[u8]> {
        let end = pos + n as u64;
        if pos < self.start || end > self.start + self.buf.len() as u64 {
            let want = (n.max(READ_CHUNK) as u64).min(self.len - pos) as usize;
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.start = pos;
        }
        let at = (pos - self.start) as usize;
        Ok(&self.buf[at..at + n])
    }

    /// Whether the bytes from `pos` on are what an interrupted append leaves.
    fn is_torn_write(&mut self, pos: u64) -> std::io::Result<bool> {
        let rest = self.len - pos;
        if rest < FRAME_HEADER_LEN as u64 {
            return Ok(true);
        }
        let h = FrameHeader::decode(self.get(pos, FRAME_HEADER_LEN)?);
        if u64::from(h.len) > rest - FRAME_HEADER_LEN as u64 {
            return Ok(true);
        }
        let mut at = pos;
        while at < self.len {
            let n = (self.len - at).min(READ_CHUNK as u64) as usize;
            if self.get(at, n)?.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            at += n as u64;
        }
        Ok(true)
    }

    /// The intact frame at `pos` with an id in `ids`, if there is one.
    fn frame_at(
        &mut self,
        pos: u64,
        ids: std::ops::RangeInclusive<u64>,
    ) -> std::io::Result<Option<FrameHeader>> {
        if self.len - pos < FRAME_HEADER_LEN as u64 {
            return Ok(None);
        }
        let h = FrameHeader::decode(self.get(pos, FRAME_HEADER_LEN)?);
        if !ids.contains(&h.id) || u64::from(h.len) > self.len - pos - FRAME_HEADER_LEN as u64 {
            return Ok(None);
        }
        let payload = self.get(pos + FRAME_HEADER_LEN as u64, h.len as usize)?;
        Ok((record_crc(h.id, h.items, payload) == h.crc).then_some(h))
    }
}

/// Reads a whole segment, verifying every frame; after damage it searches on
/// byte by byte for the next intact frame, so records after the damage survive too.
/// Ids must lie in `base..end` (`end`: the next segment's base): a frame with an
/// id past it is damage, since reads look a record up by the segment its id
/// falls in.
pub(crate) fn scan_segment(path: &Path, base: u64, end: u64) -> Result<Scan, QueueError> {
    let last_id = end.saturating_sub(1);
    let file = File::open(path).map_err(io_err(path, "open"))?;
    let len = file.metadata().map_err(io_err(path, "stat"))?.len();
    let mut scan = Scan {
        file_len: len,
        header: HeaderCheck::Damaged,
        records: Vec::new(),
        first_damage: None,
        resynced: false,
        lost_estimate: 0,
        tail_damaged: false,
        first_damage_is_torn_write: false,
    };
    if len < SEGMENT_HEADER_LEN {
        scan.first_damage = Some(0);
        scan.tail_damaged = true;
        return Ok(scan);
    }
    let mut w = Window {
        file,
        len,
        start: 0,
        buf: Vec::new(),
    };
    let read = io_err(path, "read");
    scan.header = check_segment_header(w.get(0, SEGMENT_HEADER_LEN as usize).map_err(read)?);
    if let HeaderCheck::UnsupportedVersion(found) = scan.header {
        return Err(QueueError::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
            supported: FORMAT_VERSION,
        });
    }
    if scan.header != HeaderCheck::Ok {
        scan.first_damage = Some(0);
    }
    let mut pos = SEGMENT_HEADER_LEN;
    let mut next_id = base;
    while pos < len {
        let frame = w.frame_at(pos, next_id..=last_id).map_err(io_err(path, "read"))?;
        if let Some(h) = frame {
            scan.records.push(RecordMeta {
                id: h.id,
                offset: pos,
                len: h.len,
                items: h.items,
                acked: false,
            });
            next_id = h.id + 1;
            pos += h.frame_len();
            continue;
        }
        if scan.first_damage.is_none() {
            scan.first_damage = Some(pos);
            scan.first_damage_is_torn_write = w.is_torn_write(pos).map_err(io_err(path, "read"))?;
        }
        let window = next_id..=next_id.saturating_add(RESYNC_ID_WINDOW).min(last_id);
        let mut found = None;
        let mut p = pos + 1;
        while p + FRAME_HEADER_LEN as u64 <= len {
            if let Some(h) = w.frame_at(p, window.clone()).map_err(io_err(path, "read"))? {
                found = Some((p, h));
                break;
            }
            p += 1;
        }
        match found {
            Some((p, h)) => {
                scan.resynced = true;
                scan.lost_estimate += h.id - next_id;
                pos = p;
            }
            None => {
                scan.tail_damaged = true;
                break;
            }
        }
    }
    Ok(scan)
}
