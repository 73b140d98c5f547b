//! Small filesystem helpers: private directories, directory fsync, moving files aside.

use std::fs::{DirBuilder, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{QueueError, io_err};

/// Creates `dir` (and parents) readable only by this user: queued telemetry may
/// be sensitive.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), QueueError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir, "create directory"))
}

/// Makes a file creation, rename or deletion in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), QueueError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "fsync directory"))
}

/// Moves `path` into `corrupt_dir` under a name that does not exist yet
/// (`<name>.<unix seconds>[.<n>]`), returning the new path.
pub(crate) fn move_aside(path: &Path, corrupt_dir: &Path) -> Result<PathBuf, QueueError> {
    create_private_dir(corrupt_dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "segment".into());
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut target = corrupt_dir.join(format!("{name}.{secs}"));
    let mut n = 1u32;
    while target.exists() {
        target = corrupt_dir.join(format!("{name}.{secs}.{n}"));
        n += 1;
    }
    std::fs::rename(path, &target).map_err(io_err(path, "move aside to corrupt/"))?;
    sync_dir(corrupt_dir)?;
    Ok(target)
}
