//! The acknowledgement log `acks.log`: which record ids were delivered.
//!
//! A 24-byte header (magic, version, id floor, crc) and then 16-byte entries, each
//! a run of consecutive acknowledged ids `[first, first + count)` with its own
//! crc. Appended without fsync; rewritten ("compacted") to the runs of the records
//! still on disk once it has doubled in size, and whenever the queue opens or closes.
//! The id floor is the next record id at the time of the rewrite, so ids are never
//! reused even when every segment is gone.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::error::{QueueError, io_err};
use crate::format::{ACK_FILE, ACK_TMP_FILE, read_u32, read_u64};
use crate::fsutil::sync_dir;

const ACK_MAGIC: [u8; 8] = *b"WEIRQACK";
const ACK_VERSION: u32 = 1;
const HEADER_LEN: usize = 24;
const ENTRY_LEN: usize = 16;
/// The log is not compacted below this size: rewriting a small file often buys nothing.
const MIN_COMPACT_BYTES: u64 = 64 << 10;

/// What `load` found, for the recovery report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AckFileState {
    Missing,
    Intact,
    /// Entries from `valid_bytes` on were unreadable (a torn tail after a crash,
    /// or damage): their acks are lost, so those records are delivered again.
    Damaged {
        valid_bytes: u64,
        file_bytes: u64,
    },
}

#[derive(Debug)]
pub(crate) struct LoadedAcks {
    /// Sorted, non-overlapping `[start, end)` ranges.
    ranges: Vec<(u64, u64)>,
    pub id_floor: u64,
    pub state: AckFileState,
}

impl LoadedAcks {
    pub(crate) fn contains(&self, id: u64) -> bool {
        let i = self.ranges.partition_point(|&(start, _)| start <= id);
        i > 0 && id < self.ranges[i - 1].1
    }

    /// One past the highest acknowledged id.
    pub(crate) fn end(&self) -> u64 {
        self.ranges.last().map_or(0, |r| r.1)
    }
}

pub(crate) fn load(dir: &Path) -> Result<LoadedAcks, QueueError> {
    let path = dir.join(ACK_FILE);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Ok(LoadedAcks {
                ranges: Vec::new(),
                id_floor: 0,
                state: AckFileState::Missing,
            });
        }
        Err(e) => return Err(io_err(&path, "read")(e)),
    };
    let file_bytes = data.len() as u64;
    let damaged = |valid_bytes: u64| AckFileState::Damaged {
        valid_bytes,
        file_bytes,
    };
    if data.len() < HEADER_LEN
        || data[..8] != ACK_MAGIC
        || read_u32(&data, 8) != ACK_VERSION
        || crc32fast::hash(&data[..20]) != read_u32(&data, 20)
    {
        return Ok(LoadedAcks {
            ranges: Vec::new(),
            id_floor: 0,
            state: damaged(0),
        });
    }
    let id_floor = read_u64(&data, 12);
    let mut ranges = Vec::new();
    let mut at = HEADER_LEN;
    let mut state = AckFileState::Intact;
    while at < data.len() {
        let entry = &data[at..data.len().min(at + ENTRY_LEN)];
        if entry.len() < ENTRY_LEN || crc32fast::hash(&entry[..12]) != read_u32(entry, 12) {
            state = damaged(at as u64);
            break;
        }
        let first = read_u64(entry, 0);
        let count = u64::from(read_u32(entry, 8));
        ranges.push((first, first.saturating_add(count)));
        at += ENTRY_LEN;
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    Ok(LoadedAcks {
        ranges: merged,
        id_floor,
        state,
    })
}

/// Runs of consecutive ids, from ids in increasing order.
pub(crate) fn runs(sorted_ids: impl IntoIterator<Item = u64>) -> Vec<(u64, u32)> {
    let mut out: Vec<(u64, u32)> = Vec::new();
    for id in sorted_ids {
        match out.last_mut() {
            Some((first, count)) if *count < u32::MAX && first.checked_add(u64::from(*count)) == Some(id) => {
                *count += 1
            }
            _ => out.push((id, 1)),
        }
    }
    out
}

fn encode_entries(runs: &[(u64, u32)], out: &mut Vec<u8>) {
    for &(first, count) in runs {
        let start = out.len();
        out.extend_from_slice(&first.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }
}

pub(crate) struct AckLog {
    path: PathBuf,
    file: File,
    bytes: u64,
    compact_at: u64,
}

impl AckLog {
    /// Replaces the log with one holding exactly `runs`. `durable` syncs it (on
    /// open and close); otherwise a crash may leave an empty log, which only
    /// means records are delivered again.
    pub(crate) fn rewrite(
        dir: &Path,
        id_floor: u64,
        runs: &[(u64, u32)],
        durable: bool,
    ) -> Result<AckLog, QueueError> {
        let path = dir.join(ACK_FILE);
        let tmp = dir.join(ACK_TMP_FILE);
        let mut data = Vec::with_capacity(HEADER_LEN + runs.len() * ENTRY_LEN);
        data.extend_from_slice(&ACK_MAGIC);
        data.extend_from_slice(&ACK_VERSION.to_le_bytes());
        data.extend_from_slice(&id_floor.to_le_bytes());
        let crc = crc32fast::hash(&data);
        data.extend_from_slice(&crc.to_le_bytes());
        encode_entries(runs, &mut data);
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp, "create"))?;
            f.write_all(&data).map_err(io_err(&tmp, "write"))?;
            if durable {
                f.sync_data().map_err(io_err(&tmp, "fdatasync"))?;
            }
        }
        std::fs::rename(&tmp, &path).map_err(io_err(&path, "rename the rewritten ack log to"))?;
        if durable {
            sync_dir(dir)?;
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path, "open"))?;
        let bytes = data.len() as u64;
        Ok(AckLog {
            path,
            file,
            bytes,
            compact_at: MIN_COMPACT_BYTES.max(bytes.saturating_mul(2)),
        })
    }

    /// Appends runs (no fsync: the page cache survives a killed process; a lost
    /// tail only causes redelivery).
    pub(crate) fn append(&mut self, runs: &[(u64, u32)]) -> Result<(), QueueError> {
        let mut data = Vec::with_capacity(runs.len() * ENTRY_LEN);
        encode_entries(runs, &mut data);
        self.file.write_all(&data).map_err(io_err(&self.path, "write"))?;
        self.bytes += data.len() as u64;
        Ok(())
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn needs_compaction(&self) -> bool {
        self.bytes >= self.compact_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_coalesce_consecutive_ids() {
        assert_eq!(runs([1, 2, 3, 5, 6, 9]), vec![(1, 3), (5, 2), (9, 1)]);
        assert_eq!(runs(std::iter::empty()), vec![]);
    }

    #[test]
    fn rewrite_append_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = AckLog::rewrite(dir.path(), 100, &[(1, 3)], true).expect("rewrite");
        log.append(&[(10, 2), (4, 1)]).expect("append");
        let loaded = load(dir.path()).expect("load");
        assert_eq!(loaded.state, AckFileState::Intact);
        assert_eq!(loaded.id_floor, 100);
        for id in [1, 2, 3, 4, 10, 11] {
            assert!(loaded.contains(id), "{id}");
        }
        for id in [0, 5, 9, 12] {
            assert!(!loaded.contains(id), "{id}");
        }
        assert_eq!(loaded.end(), 12);
        assert_eq!(log.bytes(), (HEADER_LEN + 3 * ENTRY_LEN) as u64);
    }

    #[test]
    fn torn_or_damaged_entries_are_dropped_not_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = AckLog::rewrite(dir.path(), 0, &[(1, 1), (2, 1)], false).expect("rewrite");
        log.append(&[(3, 1)]).expect("append");
        let path = dir.path().join(ACK_FILE);
        let mut data = std::fs::read(&path).expect("read");
        data.truncate(data.len() - 5);
        std::fs::write(&path, &data).expect("write");
        let loaded = load(dir.path()).expect("load");
        assert!(loaded.contains(2) && !loaded.contains(3));
        assert!(matches!(loaded.state, AckFileState::Damaged { .. }));

        data[HEADER_LEN + 2] ^= 0xff;
        std::fs::write(&path, &data).expect("write");
        let loaded = load(dir.path()).expect("load");
        assert!(!loaded.contains(1) && !loaded.contains(2));

        std::fs::write(&path, b"garbage").expect("write");
        let loaded = load(dir.path()).expect("load");
        assert_eq!(
            loaded.state,
            AckFileState::Damaged {
                valid_bytes: 0,
                file_bytes: 7
            }
        );
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(load(dir.path()).expect("load").state, AckFileState::Missing);
    }
}
