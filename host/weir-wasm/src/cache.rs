//! The on-disk cache of compiled plugins. A cached artifact is native code, so
//! one planted by someone else would run inside weir and could stand in for a
//! pinned plugin (say, a redaction plugin that redacts nothing). Two defences:
//!
//! - the directory: weir uses it only if it belongs to weir's user and no one
//!   else may write to it; a shared directory (an `emptyDir` mount, `/tmp`) gets
//!   a private `weir-<uid>` subdirectory created with mode 0700;
//! - each artifact carries an HMAC-SHA256 under a random key created once per
//!   cache (`cache.key`, mode 0600), over the artifact's name — the sha256 of the
//!   wasm it was compiled from and the engine's settings — and its bytes. An
//!   artifact whose tag does not verify (planted, copied from elsewhere, renamed
//!   to another plugin's name, truncated) is not loaded: the plugin is compiled
//!   again, and the rejection logged and counted.
//!
//! The artifact is read into memory, verified, and deserialized from those same
//! bytes, so nothing can swap the file between the check and the load.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

const KEY_FILE: &str = "cache.key";
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 32;

/// Why the cache, or one artifact in it, was not used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(
        "{dir}: {reason}; weir keeps compiled plugins only in a directory of its own user that no one else can write (chmod 700 it, or choose another service.plugin_cache_dir)"
    )]
    Directory { dir: String, reason: String },
    #[error("{path}: {reason}")]
    Key { path: String, reason: String },
}

impl CacheError {
    /// The `reason` label of `weir_plugin_cache_rejected_total`.
    pub fn label(&self) -> &'static str {
        match self {
            CacheError::Directory { .. } => "directory",
            CacheError::Key { .. } => "key",
        }
    }
}

/// What a lookup found.
pub enum Lookup {
    /// Verified artifact bytes, safe to deserialize.
    Hit(Vec<u8>),
    Miss,
    /// Present but not to be trusted; the reason is logged and counted.
    Rejected(&'static str),
}

/// A verified, private cache directory and its key.
pub struct ArtifactCache {
    dir: PathBuf,
    key: [u8; KEY_LEN],
}

impl ArtifactCache {
    /// Opens (creating if needed) the cache at `dir`, or a private
    /// subdirectory of it when `dir` itself is shared.
    pub fn open(dir: &Path) -> Result<Self, CacheError> {
        let dir = private_dir(dir)?;
        let key = load_or_create_key(&dir.join(KEY_FILE))?;
        Ok(ArtifactCache { dir, key })
    }

    /// The directory artifacts are kept in (after choosing a private one).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.cwasm"))
    }

    fn tag(&self, name: &str, bytes: &[u8]) -> Hmac<Sha256> {
        // A key of any length is accepted by HMAC; this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(&(name.len() as u64).to_be_bytes());
        mac.update(name.as_bytes());
        mac.update(bytes);
        mac
    }

    /// The artifact stored under `name`, if its tag verifies.
    pub fn load(&self, name: &str) -> Lookup {
        let data = match std::fs::read(self.path(name)) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Miss,
            Err(_) => return Lookup::Rejected("unreadable"),
        };
        if data.len() < TAG_LEN {
            return Lookup::Rejected("mac");
        }
        let (tag, bytes) = data.split_at(TAG_LEN);
        if self.tag(name, bytes).verify_slice(tag).is_err() {
            return Lookup::Rejected("mac");
        }
        Lookup::Hit(bytes.to_vec())
    }

    /// Stores an artifact under `name` (written aside, renamed into place).
    pub fn store(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let tag = self.tag(name, bytes).finalize().into_bytes();
        let path = self.path(name);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut f = private_file(&tmp)?;
        f.write_all(&tag)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)
    }
}

#[cfg(unix)]
fn private_dir(dir: &Path) -> Result<PathBuf, CacheError> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
    let uid = rustix::process::geteuid().as_raw();
    let bad = |dir: &Path, reason: String| CacheError::Directory {
        dir: dir.display().to_string(),
        reason,
    };
    let create = |dir: &Path| {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true).mode(0o700);
        b.create(dir)
            .map_err(|e| bad(dir, format!("cannot create it: {e}")))
    };
    if !dir.exists() {
        create(dir)?;
    }
    let meta = std::fs::metadata(dir).map_err(|e| bad(dir, format!("cannot read it: {e}")))?;
    if !meta.is_dir() {
        return Err(bad(dir, "is not a directory".into()));
    }
    if meta.uid() == uid && meta.mode() & 0o022 == 0 {
        return Ok(dir.to_path_buf());
    }
    // Shared (another owner, or group/world-writable): a subdirectory of our own.
    let own = dir.join(format!("weir-{uid}"));
    if !own.exists() {
        create(&own)?;
    }
    let meta = std::fs::symlink_metadata(&own).map_err(|e| bad(&own, format!("cannot read it: {e}")))?;
    if !meta.is_dir() {
        return Err(bad(
            &own,
            "is not a directory (a symlink is not accepted here)".into(),
        ));
    }
    if meta.uid() != uid {
        return Err(bad(
            &own,
            format!("belongs to uid {}, not weir's uid {uid}", meta.uid()),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(bad(
            &own,
            format!("has mode {:o}; it must be 700", meta.mode() & 0o777),
        ));
    }
    Ok(own)
}

#[cfg(not(unix))]
fn private_dir(dir: &Path) -> Result<PathBuf, CacheError> {
    std::fs::create_dir_all(dir).map_err(|e| CacheError::Directory {
        dir: dir.display().to_string(),
        reason: format!("cannot create it: {e}"),
    })?;
    Ok(dir.to_path_buf())
}

fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

fn load_or_create_key(path: &Path) -> Result<[u8; KEY_LEN], CacheError> {
    let bad = |reason: String| CacheError::Key {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt as _;
                let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
                if meta.uid() != rustix::process::geteuid().as_raw() || meta.mode() & 0o077 != 0 {
                    return Err(bad(
                        "the cache key must belong to weir's user with mode 600; delete it (weir makes a new one)".into(),
                    ));
                }
            }
            bytes.try_into().map_err(|_| {
                bad("not a weir cache key (32 bytes); delete it and weir makes a new one".into())
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; KEY_LEN];
            getrandom::fill(&mut key).map_err(|e| bad(format!("no randomness for a new key: {e}")))?;
            let mut f = private_file(path).map_err(|e| bad(format!("cannot create it: {e}")))?;
            f.write_all(&key)
                .and_then(|()| f.sync_all())
                .map_err(|e| bad(format!("cannot write it: {e}")))?;
            Ok(key)
        }
        Err(e) => Err(bad(format!("cannot read it: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("weir-cache-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&d).ok();
        d
    }

    #[test]
    fn an_artifact_verifies_only_under_its_own_name() {
        let d = tmp("names");
        let c = ArtifactCache::open(&d).expect("opens");
        c.store("aaa-1", b"compiled a").expect("store");
        assert!(matches!(c.load("aaa-1"), Lookup::Hit(b) if b == b"compiled a"));
        assert!(matches!(c.load("bbb-1"), Lookup::Miss));
        // The attack: another plugin's artifact under this plugin's name.
        std::fs::copy(c.path("aaa-1"), c.path("bbb-1")).expect("copy");
        assert!(matches!(c.load("bbb-1"), Lookup::Rejected("mac")));
        // A raw wasmtime artifact (no tag) is refused too.
        std::fs::write(c.path("ccc-1"), vec![7u8; 100]).expect("write");
        assert!(matches!(c.load("ccc-1"), Lookup::Rejected("mac")));
        // Reopening keeps the key: the artifact still verifies.
        let again = ArtifactCache::open(&d).expect("reopens");
        assert!(matches!(again.load("aaa-1"), Lookup::Hit(_)));
        std::fs::remove_dir_all(&d).ok();
    }

    #[cfg(unix)]
    #[test]
    fn a_shared_directory_gets_a_private_subdirectory() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = tmp("shared");
        std::fs::create_dir_all(&d).expect("dir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let c = ArtifactCache::open(&d).expect("opens");
        assert_ne!(c.dir(), d.as_path());
        let mode = std::fs::metadata(c.dir()).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // A group-writable private subdirectory is refused.
        std::fs::set_permissions(c.dir(), std::fs::Permissions::from_mode(0o770)).expect("chmod");
        let err = ArtifactCache::open(&d).err().expect("refused");
        assert!(err.to_string().contains("must be 700"), "{err}");
        std::fs::remove_dir_all(&d).ok();
    }
}
