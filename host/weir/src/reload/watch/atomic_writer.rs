//! Test helper: a ConfigMap volume updated the way kubelet's AtomicWriter
//! updates it, on a temporary directory.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(what: &str) -> io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("weir-reload-{what}-{}-{n}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A ConfigMap mount: `..<timestamp>/` holds the files, `..data` links to it,
/// and each user-visible `NAME` links to `..data/NAME`.
pub struct ConfigMapVolume {
    dir: TempDir,
    /// The timestamped directory `..data` points at.
    current: Option<String>,
}

impl ConfigMapVolume {
    /// The first write: creates the volume with `files` in it.
    pub fn create(files: &[(&str, &[u8])]) -> io::Result<Self> {
        let mut volume = Self {
            dir: TempDir::new("configmap")?,
            current: None,
        };
        volume.update(files)?;
        Ok(volume)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// One AtomicWriter update, step by step as kubelet does it.
    pub fn update(&mut self, files: &[(&str, &[u8])]) -> io::Result<()> {
        let root = self.path().to_path_buf();
        // 1. A fresh timestamped directory with the new payload.
        let stamp = timestamp_dir_name();
        let stamped = root.join(&stamp);
        fs::create_dir(&stamped)?;
        for (name, bytes) in files {
            fs::write(stamped.join(name), bytes)?;
        }
        // 2. `..data_tmp` -> the new directory (relative, as kubelet links it).
        let tmp = root.join(DATA_TMP);
        symlink(&stamp, &tmp)?;
        // 3. The atomic swap.
        fs::rename(&tmp, root.join(DATA))?;
        // 4. User-visible links for names not linked yet (all, the first time).
        for (name, _) in files {
            let visible = root.join(name);
            if fs::symlink_metadata(&visible).is_err() {
                symlink(Path::new(DATA).join(name), &visible)?;
            }
        }
        // 5. The old payload goes.
        if let Some(old) = self.current.replace(stamp) {
            fs::remove_dir_all(root.join(old))?;
        }
        Ok(())
    }
}

/// `..2006_01_02_15_04_05.<suffix>` like kubelet's `os.MkdirTemp` pattern;
/// the counter keeps names unique within a second.
fn timestamp_dir_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs();
    let (hh, mm, ss) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!(
        "..2026_12_01_{hh:02}_{mm:02}_{ss:02}.{:09}{n}",
        now.subsec_nanos()
    )
}
