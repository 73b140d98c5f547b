//! The built-in value detectors. Each reports the byte ranges it finds in a
//! string; the email and JWT detectors use precompiled regexes, the others are
//! small hand-written scanners (cheaper than a regex, and some checks — Luhn,
//! a real IPv6 parse — are not regular anyway). A one-pass [`Stats`] prefilter
//! lets most strings skip most detectors without scanning them again.

use core::net::{Ipv4Addr, Ipv6Addr};

use regex::Regex;

/// What one pass over a string tells the prefilters.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub at: bool,
    pub digits: u32,
    pub dots: u32,
    pub colons: u32,
    pub b: bool,
    pub j: bool,
}

impl Stats {
    pub fn of(text: &str) -> Stats {
        let mut s = Stats::default();
        for &c in text.as_bytes() {
            match c {
                b'0'..=b'9' => s.digits += 1,
                b'.' => s.dots += 1,
                b':' => s.colons += 1,
                b'@' => s.at = true,
                b'b' | b'B' => s.b = true,
                b'J' => s.j = true,
                _ => {}
            }
        }
        s
    }
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

pub fn email_regex() -> Result<Regex, regex::Error> {
    // Local part, '@', one or more domain labels, then an alphabetic TLD.
    Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
}

pub fn jwt_regex() -> Result<Regex, regex::Error> {
    // header.payload.signature, base64url; the JSON header always encodes to "eyJ...".
    Regex::new(r"(?-u:\b)eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
}

pub fn regex_matches(re: &Regex, text: &str, found: &mut impl FnMut(usize, usize)) {
    for m in re.find_iter(text) {
        found(m.start(), m.end());
    }
}

/// `Bearer <token>` (any case): reports the token only, so the scheme stays readable.
pub fn bearer(text: &str, found: &mut impl FnMut(usize, usize)) {
    let b = text.as_bytes();
    let n = b.len();
    let mut i = 0;
    while i + 6 < n {
        if (b[i] | 0x20) != b'b'
            || !b[i..i + 6].eq_ignore_ascii_case(b"bearer")
            || (i > 0 && is_word(b[i - 1]))
        {
            i += 1;
            continue;
        }
        let mut t = i + 6;
        while t < n && (b[t] == b' ' || b[t] == b'\t') {
            t += 1;
        }
        if t == i + 6 {
            i += 1;
            continue;
        }
        let mut e = t;
        while e < n
            && (b[e].is_ascii_alphanumeric() || matches!(b[e], b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
        {
            e += 1;
        }
        if e == t {
            i = t;
            continue;
        }
        while e < n && b[e] == b'=' {
            e += 1;
        }
        found(t, e);
        i = e;
    }
}

/// The Luhn checksum over the digits of `bytes` (other bytes are skipped).
pub fn luhn(bytes: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    for &c in bytes.iter().rev() {
        if !c.is_ascii_digit() {
            continue;
        }
        let mut d = u32::from(c - b'0');
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
    }
    sum.is_multiple_of(10)
}

/// Payment card numbers: 13–19 digits, optionally grouped by single spaces or
/// dashes, starting with 2–9 (no card network issues 0 or 1, which keeps epoch
/// timestamps and most counters out), passing the Luhn check. A run of groups
/// that fails as a whole is searched for a valid sub-run of whole groups.
pub fn credit_cards(text: &str, groups: &mut Vec<(usize, usize)>, found: &mut impl FnMut(usize, usize)) {
    let b = text.as_bytes();
    let n = b.len();
    let mut i = 0;
    while i < n {
        if !b[i].is_ascii_digit() || (i > 0 && is_word(b[i - 1])) {
            i += 1;
            continue;
        }
        groups.clear();
        let mut j = i;
        loop {
            let start = j;
            while j < n && b[j].is_ascii_digit() {
                j += 1;
            }
            groups.push((start, j));
            if j + 1 < n && (b[j] == b' ' || b[j] == b'-') && b[j + 1].is_ascii_digit() {
                j += 1;
            } else {
                break;
            }
        }
        let end = j;
        if end < n && is_word(b[end]) {
            // The last group runs into a word ("1234abc"): it is not part of a number.
            groups.pop();
        }
        let mut a = 0;
        while a < groups.len() {
            let mut digits = 0;
            let mut best = None;
            for (z, &(gs, ge)) in groups.iter().enumerate().skip(a) {
                digits += ge - gs;
                if digits > 19 {
                    break;
                }
                let (start, stop) = (groups[a].0, ge);
                if digits >= 13 && b[start] >= b'2' && luhn(&b[start..stop]) {
                    best = Some(z);
                }
            }
            match best {
                Some(z) => {
                    found(groups[a].0, groups[z].1);
                    a = z + 1;
                }
                None => a += 1,
            }
        }
        i = end.max(i + 1);
    }
}

/// Dotted-quad IPv4 addresses (0–255 each, no leading zeros), standing alone.
pub fn ipv4(text: &str, found: &mut impl FnMut(usize, usize)) {
    let b = text.as_bytes();
    let n = b.len();
    let mut i = 0;
    while i < n {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let mut end = i;
        if (start > 0 && (is_word(b[start - 1]) || b[start - 1] == b'.')) || (end < n && is_word(b[end])) {
            continue;
        }
        if end - start > 1 && b[end - 1] == b'.' {
            end -= 1;
        }
        if text[start..end].parse::<Ipv4Addr>().is_ok() {
            found(start, end);
        }
    }
}

fn is_v6(c: u8) -> bool {
    c.is_ascii_hexdigit() || c == b':' || c == b'.'
}

/// IPv6 addresses in any standard form (`2001:db8::1`, `::ffff:10.0.0.1`,
/// full eight groups), standing alone; validated by the standard parser.
pub fn ipv6(text: &str, found: &mut impl FnMut(usize, usize)) {
    let b = text.as_bytes();
    let n = b.len();
    let mut i = 0;
    while i < n {
        if !is_v6(b[i]) {
            i += 1;
            continue;
        }
        let mut start = i;
        while i < n && is_v6(b[i]) {
            i += 1;
        }
        let end = i;
        // "addr:fe80::1": a single leading colon is punctuation, not part of the address.
        if b[start] == b':' && start + 1 < end && b[start + 1] != b':' {
            start += 1;
        }
        if (start > 0 && is_word(b[start - 1])) || (end < n && is_word(b[end])) {
            continue;
        }
        let run = &b[start..end];
        if run.iter().filter(|&&c| c == b':').count() < 2 || !run.iter().any(u8::is_ascii_hexdigit) {
            continue;
        }
        let mut e = end;
        loop {
            if text[start..e].parse::<Ipv6Addr>().is_ok() {
                found(start, e);
                break;
            }
            // Trailing sentence punctuation: "... at fe80::1." or "fe80::1: refused".
            let trim = e > start + 2 && (b[e - 1] == b'.' || (b[e - 1] == b':' && b[e - 2] != b':'));
            if !trim {
                break;
            }
            e -= 1;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ranges(text: &str, f: impl Fn(&str, &mut dyn FnMut(usize, usize))) -> Vec<&str> {
        let mut out = Vec::new();
        f(text, &mut |a, b| out.push((a, b)));
        out.into_iter().map(|(a, b)| &text[a..b]).collect()
    }

    fn cards(text: &str) -> Vec<&str> {
        ranges(text, |t, f| {
            let mut g = Vec::new();
            credit_cards(t, &mut g, &mut |a, b| f(a, b));
        })
    }

    #[test]
    fn luhn_checks() {
        assert!(luhn(b"4111111111111111"));
        assert!(luhn(b"4111-1111-1111-1111"));
        assert!(luhn(b"79927398713"));
        assert!(!luhn(b"4111111111111112"));
        assert!(!luhn(b"79927398710"));
    }

    #[test]
    fn card_numbers() {
        assert_eq!(cards("card 4111111111111111 ok"), ["4111111111111111"]);
        assert_eq!(cards("4111 1111 1111 1111"), ["4111 1111 1111 1111"]);
        assert_eq!(cards("x=4111-1111-1111-1111;"), ["4111-1111-1111-1111"]);
        assert_eq!(cards("amex 378282246310005"), ["378282246310005"]);
        assert_eq!(
            cards("mc 5555555555554444, visa 4012888888881881"),
            ["5555555555554444", "4012888888881881"]
        );
        // Luhn failures, wrong lengths, word-adjacent, leading 0/1 (timestamps).
        assert!(cards("4111111111111112").is_empty());
        assert!(cards("4111 1111 1111 1112").is_empty());
        assert!(cards("411111111111").is_empty());
        assert!(cards("41111111111111111111111").is_empty());
        assert!(cards("id4111111111111111").is_empty());
        assert!(cards("4111111111111111abc").is_empty());
        assert!(cards("1700000000000000007").is_empty());
        assert!(cards("4111  1111 1111 1111").is_empty());
        // A valid card inside a longer run of groups.
        assert_eq!(cards("4111 1111 1111 1111 12"), ["4111 1111 1111 1111"]);
        assert_eq!(cards("12 4111 1111 1111 1111"), ["4111 1111 1111 1111"]);
    }

    #[test]
    fn bearer_tokens() {
        let f = |t: &str| {
            ranges(t, |t, f| bearer(t, &mut |a, b| f(a, b)))
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            f("Authorization: Bearer abc.DEF-123_~+/=="),
            ["abc.DEF-123_~+/=="]
        );
        assert_eq!(f("bearer xyz"), ["xyz"]);
        assert_eq!(f("BEARER\txyz rest"), ["xyz"]);
        assert!(f("Bearer").is_empty());
        assert!(f("Bearer ").is_empty());
        assert!(f("bearerxyz").is_empty());
        assert!(f("forbearer xyz").is_empty());
        assert!(f("the bearer: none").is_empty());
    }

    #[test]
    fn ip_addresses() {
        let v4 = |t: &str| {
            ranges(t, |t, f| ipv4(t, &mut |a, b| f(a, b)))
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            v4("from 10.0.0.1 to 192.168.1.254."),
            ["10.0.0.1", "192.168.1.254"]
        );
        assert_eq!(v4("peer=8.8.8.8:53"), ["8.8.8.8"]);
        assert!(v4("256.1.1.1").is_empty());
        assert!(v4("1.2.3").is_empty());
        assert!(v4("1.2.3.4.5").is_empty());
        assert!(v4("v1.2.3.4").is_empty());
        assert!(v4("01.2.3.4").is_empty());
        let v6 = |t: &str| {
            ranges(t, |t, f| ipv6(t, &mut |a, b| f(a, b)))
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(v6("addr 2001:db8::1 up"), ["2001:db8::1"]);
        assert_eq!(v6("[fe80::1ff:fe23:4567:890a]:443"), ["fe80::1ff:fe23:4567:890a"]);
        assert_eq!(v6("x ::ffff:10.0.0.1."), ["::ffff:10.0.0.1"]);
        assert_eq!(v6("addr:fe80::1: refused"), ["fe80::1"]);
        assert_eq!(
            v6("2001:0db8:0000:0000:0000:ff00:0042:8329"),
            ["2001:0db8:0000:0000:0000:ff00:0042:8329"]
        );
        assert_eq!(v6("net fe80::"), ["fe80::"]);
        assert!(v6("12:34:56").is_empty());
        assert!(v6("00:1a:2b:3c:4d:5e").is_empty());
        assert!(v6("Cache::Add").is_empty());
        assert!(v6("a :: b").is_empty());
        assert!(v6("std::vec").is_empty());
    }

    #[test]
    fn emails_and_jwts() {
        let re = email_regex().unwrap();
        let f = |t: &str| {
            ranges(t, |t, f| regex_matches(&re, t, &mut |a, b| f(a, b)))
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            f("to: Jane.Doe+x@mail.example.co.uk;"),
            ["Jane.Doe+x@mail.example.co.uk"]
        );
        assert_eq!(f("{\"u\":\"a@b.io\"}"), ["a@b.io"]);
        assert!(f("user@localhost").is_empty());
        assert!(f("@handle").is_empty());
        assert!(f("a@b.c").is_empty());
        let jwt = jwt_regex().unwrap();
        let tok = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        let g = |t: &str| {
            ranges(t, |t, f| regex_matches(&jwt, t, &mut |a, b| f(a, b)))
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(g(&format!("token={tok}&x=1")), [tok]);
        assert_eq!(
            g("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."),
            ["eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."]
        );
        assert!(g("eyJhbGciOiJIUzI1NiJ9.only-two").is_empty());
        assert!(g("xeyJhbGci.eyJ.sig").is_empty());
        assert!(g("abc.def.ghi").is_empty());
    }

    #[test]
    fn stats_count_triggers() {
        let s = Stats::of("a@b 12.3:4 Bearer eyJ");
        assert!(s.at && s.b && s.j);
        assert_eq!((s.digits, s.dots, s.colons), (4, 1, 1));
    }
}
