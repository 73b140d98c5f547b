//! Request body decompression with a hard cap on the decompressed size, so a
//! small compressed body cannot expand into unbounded memory.

use std::io::Read;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("request body exceeds the limit of {limit} bytes (after decompression)")]
    TooLarge { limit: usize },
    #[error("unsupported Content-Encoding {0:?}; use gzip, zstd or none")]
    UnsupportedEncoding(String),
    #[error("cannot decompress the request body: {0}")]
    Corrupt(std::io::Error),
}

/// Decompresses `body` per its Content-Encoding, reading at most `limit` bytes.
pub fn decompress(encoding: Option<&str>, body: &[u8], limit: usize) -> Result<Option<Vec<u8>>, DecodeError> {
    let reader: Box<dyn Read + '_> = match encoding.map(str::trim) {
        None | Some("") | Some("identity") => return Ok(None),
        Some(e) if e.eq_ignore_ascii_case("gzip") => Box::new(flate2::read::MultiGzDecoder::new(body)),
        Some(e) if e.eq_ignore_ascii_case("zstd") => {
            Box::new(zstd::stream::read::Decoder::new(body).map_err(DecodeError::Corrupt)?)
        }
        Some(other) => return Err(DecodeError::UnsupportedEncoding(other.to_string())),
    };
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(DecodeError::Corrupt)?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn bomb_is_cut_off_at_the_limit() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 20 << 20]).expect("write");
        let bomb = enc.finish().expect("finish");
        assert!(bomb.len() < 100_000);
        assert!(matches!(
            decompress(Some("gzip"), &bomb, 1 << 20),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn zstd_roundtrip_and_unknown_encoding() {
        let z = zstd::encode_all(&b"hello"[..], 3).expect("zstd");
        assert_eq!(
            decompress(Some("zstd"), &z, 100).expect("ok"),
            Some(b"hello".to_vec())
        );
        assert!(matches!(
            decompress(Some("br"), b"", 100),
            Err(DecodeError::UnsupportedEncoding(_))
        ));
        assert!(matches!(
            decompress(Some("gzip"), b"nope", 100),
            Err(DecodeError::Corrupt(_))
        ));
    }
}
