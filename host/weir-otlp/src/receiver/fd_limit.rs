//! Accepting at the open-file limit. `accept` fails with EMFILE/ENFILE while the
//! connection stays queued, so a naive loop spins; instead each listener keeps
//! spare descriptors (open on /dev/null) that it gives up for a moment to take
//! the queued connection: to close it at once (data listeners shed load while
//! existing connections are served) or to serve it (the admin server).

use std::fs::File;
use std::io;

/// EMFILE (process limit) and ENFILE (system limit), the same on Linux and macOS.
pub(crate) fn is_fd_limit(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24))
}

/// Descriptors held in reserve for accepting at the limit.
pub(crate) struct SpareFds {
    files: Vec<File>,
    want: usize,
}

impl SpareFds {
    pub(crate) fn new(want: usize) -> Self {
        let mut spares = SpareFds {
            files: Vec::with_capacity(want),
            want,
        };
        spares.refill();
        spares
    }

    /// Tops the reserve up again; a no-op (one failing `open`) while at the limit.
    pub(crate) fn refill(&mut self) {
        while self.files.len() < self.want {
            match File::open("/dev/null") {
                Ok(f) => self.files.push(f),
                Err(_) => break,
            }
        }
    }

    /// Closes one spare so the next `accept` can succeed; false when none is left.
    pub(crate) fn release_one(&mut self) -> bool {
        self.files.pop().is_some()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.files.len() >= self.want
    }
}

/// The soft open-file limit of this process, where the OS says it (Linux).
pub fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spares_are_released_and_refilled() {
        let mut s = SpareFds::new(2);
        assert!(s.is_full());
        assert!(s.release_one());
        assert!(s.release_one());
        assert!(!s.release_one());
        s.refill();
        assert!(s.is_full());
    }

    #[test]
    fn fd_limit_errors_are_recognised() {
        assert!(is_fd_limit(&io::Error::from_raw_os_error(24)));
        assert!(is_fd_limit(&io::Error::from_raw_os_error(23)));
        assert!(!is_fd_limit(&io::Error::from_raw_os_error(104)));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_the_open_file_limit() {
        assert!(open_file_limit().is_some_and(|n| n > 0));
    }
}
