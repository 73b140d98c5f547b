//! A certificate's validity period (notBefore, notAfter), read from its DER
//! without a full X.509 parser: rustls checks everything else at handshake
//! time, but weir wants to say at load time that a certificate has expired.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When a certificate becomes and stops being valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// One DER element: its tag, and the content and the rest after it.
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// The validity of an X.509 certificate in DER; None when the structure is
/// not one.
pub fn of(der: &[u8]) -> Option<Validity> {
    let (tag, cert, _) = element(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = element(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    let (tag, _, after) = element(rest)?;
    if tag == VERSION {
        rest = after;
    }
    // serialNumber, signature, issuer
    for _ in 0..3 {
        rest = element(rest)?.2;
    }
    let (tag, validity, _) = element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (t1, nb, rest) = element(validity)?;
    let (t2, na, _) = element(rest)?;
    Some(Validity {
        not_before: time(t1, nb)?,
        not_after: time(t2, na)?,
    })
}

/// UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), as RFC 5280
/// requires them (UTC, with seconds).
fn time(tag: u8, s: &[u8]) -> Option<SystemTime> {
    let digits = |b: &[u8]| -> Option<i64> {
        b.iter().try_fold(0i64, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (year, rest) = match tag {
        UTC_TIME if s.len() == 13 => {
            let yy = digits(&s[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        GENERALIZED_TIME if s.len() == 15 => (digits(&s[..4])?, &s[4..]),
        _ => return None,
    };
    if rest.last() != Some(&b'Z') {
        return None;
    }
    let field = |i: usize| digits(&rest[i..i + 2]);
    let (month, day, hour, min, sec) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_validity_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["a.test".into()]).expect("params");
        params.not_before = rcgen::date_time_ymd(2020, 2, 29);
        params.not_after = rcgen::date_time_ymd(2051, 12, 31);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let v = of(cert.der()).expect("validity");
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).expect("after epoch").as_secs();
        // 2020-02-29 (UTCTime) and 2051-12-31 (GeneralizedTime, from 2050 on).
        assert_eq!(secs(v.not_before), 1_582_934_400);
        assert_eq!(secs(v.not_after), 2_587_593_600);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(of(b""), None);
        assert_eq!(of(&[0x30, 0x82, 0xff]), None);
        assert_eq!(of(&[0x30, 0x03, 0x02, 0x01, 0x00]), None);
        assert_eq!(time(UTC_TIME, b"2402301200Z0"), None);
    }
}
