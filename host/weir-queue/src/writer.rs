//! The writer thread: the only code that writes segment files. It takes every
//! append waiting in its channel, writes them with one `write` per few MiB, calls
//! one `fdatasync` for the whole group (group commit), and then completes each
//! waiter.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::error::{QueueError, io_err};
use crate::format::{FrameHeader, SEGMENT_HEADER_LEN, frame_len, segment_file_name, segment_header};
use crate::fsutil::sync_dir;
use crate::state::{RecordMeta, Segment, Shared};
use crate::{Fsync, Record, RecordId};

/// Buffered frames are written out at this size, so a large group does not
/// need one large copy.
const WRITE_CHUNK: usize = 4 << 20;
/// A group stops taking waiting appends at this many payload bytes, bounding
/// the latency of its first waiter.
const MAX_GROUP_BYTES: u64 = 64 << 20;

type Done = oneshot::Sender<Result<Record, QueueError>>;

pub(crate) enum Msg {
    Append(AppendReq),
    /// Write and sync everything before it, then exit.
    Close,
}

pub(crate) struct AppendReq {
    pub items: u32,
    pub payload: Bytes,
    /// Bytes reserved against max_bytes (the frame length).
    pub reserved: u64,
    pub done: Done,
}

/// The segment being appended to.
pub(crate) struct Active {
    pub base: u64,
    pub path: PathBuf,
    pub file: File,
    pub size: u64,
    pub records: usize,
}

impl Active {
    /// Creates segment `base`: header written and synced, directory synced.
    pub(crate) fn create(dir: &std::path::Path, base: u64) -> Result<(Active, Segment), QueueError> {
        let path = dir.join(segment_file_name(base));
        let created = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path, "create segment"));
        let mut file = created?;
        let init = file
            .write_all(&segment_header())
            .map_err(io_err(&path, "write header of"))
            .and_then(|()| file.sync_data().map_err(io_err(&path, "fdatasync")))
            .and_then(|()| sync_dir(dir))
            .and_then(|()| File::open(&path).map_err(io_err(&path, "open")));
        match init {
            Ok(reader) => {
                let seg = Segment::new(base, path.clone(), reader, SEGMENT_HEADER_LEN);
                let active = Active {
                    base,
                    path,
                    file,
                    size: SEGMENT_HEADER_LEN,
                    records: 0,
                };
                Ok((active, seg))
            }
            Err(e) => {
                // A half-made segment must not be mistaken for damage at the next open.
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }
}

/// A record written but not yet completed to its waiter.
struct Written {
    record: Record,
    done: Done,
}

/// A record encoded into the buffer but not yet written.
struct Staged {
    meta: RecordMeta,
    record: Record,
    reserved: u64,
    done: Done,
}

pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub dir: PathBuf,
    pub fsync: Fsync,
    pub segment_size: u64,
    pub active: Option<Active>,
    pub next_id: u64,
    last_sync: Option<Instant>,
    unsynced: Vec<Written>,
    buf: Vec<u8>,
    staged: Vec<Staged>,
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        fsync: Fsync,
        segment_size: u64,
        active: Active,
        next_id: u64,
    ) -> Writer {
        Writer {
            dir: shared.dir.clone(),
            shared,
            fsync,
            segment_size,
            active: Some(active),
            next_id,
            last_sync: None,
            unsynced: Vec::new(),
            buf: Vec::new(),
            staged: Vec::new(),
        }
    }

    pub(crate) fn run(mut self, rx: Receiver<Msg>) {
        while let Some(first) = self.next_msg(&rx) {
            let mut closing = false;
            let mut reqs = Vec::new();
            let mut group_bytes = 0u64;
            let mut msg = Some(first);
            while let Some(m) = msg.take() {
                match m {
                    Msg::Append(r) => {
                        group_bytes += r.reserved;
                        reqs.push(r);
                    }
                    Msg::Close => {
                        closing = true;
                        break;
                    }
                }
                if group_bytes < MAX_GROUP_BYTES {
                    msg = rx.try_recv().ok();
                }
            }
            self.write_group(reqs);
            if closing || self.sync_due() {
                self.sync_and_complete();
            }
            if closing {
                break;
            }
        }
        self.sync_and_complete();
    }

    /// The next message; meanwhile syncs written records when the interval is up.
    fn next_msg(&mut self, rx: &Receiver<Msg>) -> Option<Msg> {
        loop {
            if self.unsynced.is_empty() {
                return rx.recv().ok();
            }
            let Fsync::Interval(interval) = self.fsync else {
                self.sync_and_complete();
                continue;
            };
            let now = Instant::now();
            let deadline = self.last_sync.map_or(now, |t| t + interval);
            if now >= deadline {
                self.sync_and_complete();
                continue;
            }
            match rx.recv_timeout(deadline - now) {
                Ok(m) => return Some(m),
                Err(RecvTimeoutError::Timeout) => self.sync_and_complete(),
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    fn sync_due(&self) -> bool {
        match self.fsync {
            Fsync::Always => true,
            Fsync::Interval(d) => self.last_sync.is_none_or(|t| t.elapsed() >= d),
        }
    }

    fn write_group(&mut self, reqs: Vec<AppendReq>) {
        for req in reqs {
            let flen = frame_len(req.payload.len());
            let must_roll = match &self.active {
                None => true,
                Some(a) => {
                    (a.records + self.staged.len()) > 0
                        && a.size + self.buf.len() as u64 + flen > self.segment_size
                }
            };
            if must_roll {
                self.flush();
                if let Err(e) = self.roll() {
                    self.shared.lock().release(req.reserved);
                    let _ = req.done.send(Err(e));
                    continue;
                }
            }
            let Some(active) = &self.active else {
                // roll() succeeded, so there is an active segment.
                self.shared.lock().release(req.reserved);
                let _ = req.done.send(Err(QueueError::Closed));
                continue;
            };
            let id = self.next_id;
            self.next_id += 1;
            let header = FrameHeader::new(id, req.items, &req.payload);
            let offset = active.size + self.buf.len() as u64;
            self.buf.extend_from_slice(&header.encode());
            self.buf.extend_from_slice(&req.payload);
            self.staged.push(Staged {
                meta: RecordMeta {
                    id,
                    offset,
                    len: header.len,
                    items: req.items,
                    acked: false,
                },
                record: Record {
                    id: RecordId(id),
                    items: req.items,
                    bytes: header.len,
                },
                reserved: req.reserved,
                done: req.done,
            });
            if self.buf.len() >= WRITE_CHUNK {
                self.flush();
            }
        }
        self.flush();
    }

    /// Writes the buffered frames and publishes them to the index.
    fn flush(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        let staged = std::mem::take(&mut self.staged);
        let reserved: u64 = staged.iter().map(|s| s.reserved).sum();
        let Some(active) = self.active.as_mut() else {
            self.shared.lock().release(reserved);
            for s in staged {
                let _ = s.done.send(Err(QueueError::Closed));
            }
            self.buf.clear();
            return;
        };
        match active.file.write_all(&self.buf) {
            Ok(()) => {
                let metas: Vec<RecordMeta> = staged.iter().map(|s| s.meta).collect();
                let written = self.buf.len() as u64;
                active.size += written;
                active.records += metas.len();
                self.shared.lock().publish(active.base, &metas, written, reserved);
                self.unsynced.extend(staged.into_iter().map(|s| Written {
                    record: s.record,
                    done: s.done,
                }));
            }
            Err(e) => {
                tracing::error!(path = %active.path.display(), error = %e, "disk queue: write failed; starting a new segment");
                // Cut off the partial frames so the file ends at a record boundary.
                let _ = active.file.set_len(active.size);
                let real_size = active.file.metadata().map_or(active.size, |m| m.len());
                let base = active.base;
                {
                    let mut st = self.shared.lock();
                    st.release(reserved);
                    st.set_size(base, real_size);
                }
                let path = active.path.clone();
                let msg = e.to_string();
                for s in staged {
                    let _ = s.done.send(Err(QueueError::Io {
                        path: path.clone(),
                        op: "write to segment",
                        source: std::io::Error::new(e.kind(), msg.clone()),
                    }));
                }
                self.seal();
            }
        }
        self.buf.clear();
    }

    /// Syncs the active segment and completes every written record.
    fn sync_and_complete(&mut self) {
        if self.unsynced.is_empty() {
            return;
        }
        let written = std::mem::take(&mut self.unsynced);
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        // The interval runs from sync start to sync start: a slow disk does not
        // stretch it.
        self.last_sync = Some(Instant::now());
        let result = match self.active.as_ref() {
            Some(a) => a.file.sync_data().map_err(|e| (a.path.clone(), e)),
            None => Err((self.dir.clone(), std::io::Error::other("segment closed"))),
        };
        match result {
            Ok(()) => {
                for w in written {
                    let _ = w.done.send(Ok(w.record));
                }
            }
            Err((path, e)) => {
                // After a failed fdatasync the page cache state is unknown: fail
                // the waiters (their clients retry) and drop the records from the
                // index; a restart may redeliver them as duplicates.
                tracing::error!(path = %path.display(), error = %e, "disk queue: fdatasync failed; starting a new segment");
                let ids: Vec<u64> = written.iter().map(|w| w.record.id.0).collect();
                self.shared.lock().ack(&ids);
                let msg = e.to_string();
                for w in written {
                    let _ = w.done.send(Err(QueueError::Io {
                        path: path.clone(),
                        op: "fdatasync",
                        source: std::io::Error::new(e.kind(), msg.clone()),
                    }));
                }
                self.active = None;
            }
        }
    }

    /// Stops appending to the active segment after an error (the next append rolls).
    fn seal(&mut self) {
        self.sync_and_complete();
        self.active = None;
    }

    /// Seals the active segment (synced first, so a sealed segment is complete
    /// on disk) and starts a new one named after the next id.
    fn roll(&mut self) -> Result<(), QueueError> {
        if self.active.is_some() {
            self.sync_and_complete();
        }
        self.active = None;
        let (active, seg) = Active::create(&self.dir, self.next_id)?;
        self.shared.lock().set_active(seg);
        self.active = Some(active);
        Ok(())
    }
}
