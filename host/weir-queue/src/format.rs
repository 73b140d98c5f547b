//! On-disk encoding of segment files: the header, record frames, checksums and
//! file names. Everything is little-endian; see the crate docs for the layout.

/// First bytes of every segment file.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"WEIRQSEG";
/// The one segment format this build reads and writes.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// magic (8) + version (4) + crc32 of the previous 12 bytes (4).
pub(crate) const SEGMENT_HEADER_LEN: u64 = 16;
/// length (4) + crc (4) + id (8) + items (4), then the payload.
pub(crate) const FRAME_HEADER_LEN: usize = 20;
/// Largest payload a frame can describe (its length field is a u32).
pub(crate) const MAX_PAYLOAD: u64 = u32::MAX as u64;

pub(crate) const SEGMENT_SUFFIX: &str = ".seg";
/// A salvaged copy of a damaged segment, renamed over the original once complete.
pub(crate) const SALVAGE_SUFFIX: &str = ".seg.salvage";
pub(crate) const ACK_FILE: &str = "acks.log";
pub(crate) const ACK_TMP_FILE: &str = "acks.log.tmp";
pub(crate) const LOCK_FILE: &str = "lock";
pub(crate) const CORRUPT_DIR: &str = "corrupt";

pub(crate) fn segment_header() -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    let crc = crc32fast::hash(&h[..12]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    Ok,
    /// Not a segment header (wrong magic or checksum): damaged.
    Damaged,
    /// An intact header of a format this build does not know (a newer weir).
    UnsupportedVersion(u32),
}

pub(crate) fn check_segment_header(h: &[u8]) -> HeaderCheck {
    if h.len() < SEGMENT_HEADER_LEN as usize || h[..8] != SEGMENT_MAGIC {
        return HeaderCheck::Damaged;
    }
    if crc32fast::hash(&h[..12]) != read_u32(h, 12) {
        return HeaderCheck::Damaged;
    }
    match read_u32(h, 8) {
        FORMAT_VERSION => HeaderCheck::Ok,
        v => HeaderCheck::UnsupportedVersion(v),
    }
}

/// The checksum stored in a frame: crc32 over id, items and payload.
pub(crate) fn record_crc(id: u64, items: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&id.to_le_bytes());
    h.update(&items.to_le_bytes());
    h.update(payload);
    h.finalize()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub len: u32,
    pub crc: u32,
    pub id: u64,
    pub items: u32,
}

impl FrameHeader {
    pub(crate) fn new(id: u64, items: u32, payload: &[u8]) -> FrameHeader {
        FrameHeader {
            // Callers check MAX_PAYLOAD before building a frame.
            len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            crc: record_crc(id, items, payload),
            id,
            items,
        }
    }

    pub(crate) fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut b = [0u8; FRAME_HEADER_LEN];
        b[0..4].copy_from_slice(&self.len.to_le_bytes());
        b[4..8].copy_from_slice(&self.crc.to_le_bytes());
        b[8..16].copy_from_slice(&self.id.to_le_bytes());
        b[16..20].copy_from_slice(&self.items.to_le_bytes());
        b
    }

    /// `b` must hold at least FRAME_HEADER_LEN bytes.
    pub(crate) fn decode(b: &[u8]) -> FrameHeader {
        FrameHeader {
            len: read_u32(b, 0),
            crc: read_u32(b, 4),
            id: read_u64(b, 8),
            items: read_u32(b, 16),
        }
    }

    /// Bytes the whole frame takes on disk.
    pub(crate) fn frame_len(&self) -> u64 {
        FRAME_HEADER_LEN as u64 + u64::from(self.len)
    }
}

/// Bytes a record with this payload takes on disk.
pub(crate) fn frame_len(payload_len: usize) -> u64 {
    FRAME_HEADER_LEN as u64 + payload_len as u64
}

pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

pub(crate) fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Segment files are named after the first record id they may hold, zero-padded
/// so that name order is id order.
pub(crate) fn segment_file_name(base: u64) -> String {
    format!("{base:020}{SEGMENT_SUFFIX}")
}

pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_damage() {
        let h = segment_header();
        assert_eq!(check_segment_header(&h), HeaderCheck::Ok);
        let mut bad = h;
        bad[3] ^= 1;
        assert_eq!(check_segment_header(&bad), HeaderCheck::Damaged);
        let mut newer = h;
        newer[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32fast::hash(&newer[..12]);
        newer[12..16].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(check_segment_header(&newer), HeaderCheck::UnsupportedVersion(2));
        assert_eq!(check_segment_header(&h[..10]), HeaderCheck::Damaged);
    }

    #[test]
    fn frame_header_round_trip() {
        let f = FrameHeader::new(42, 7, b"hello");
        let d = FrameHeader::decode(&f.encode());
        assert_eq!(f, d);
        assert_eq!(d.len, 5);
        assert_eq!(d.frame_len(), 25);
        assert_eq!(d.crc, record_crc(42, 7, b"hello"));
        assert_ne!(d.crc, record_crc(43, 7, b"hello"));
    }

    #[test]
    fn segment_names_sort_by_id() {
        assert_eq!(segment_file_name(7), "00000000000000000007.seg");
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_file_name("7.seg"), None);
        assert_eq!(parse_segment_file_name("00000000000000000007.seg.salvage"), None);
        assert!(segment_file_name(9) < segment_file_name(10));
    }
}
