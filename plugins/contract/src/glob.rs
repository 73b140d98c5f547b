//! Key and name globs: `*` matches any run of characters (dots included), `?`
//! exactly one character; everything else matches itself. Compiled once in
//! `init`; the common shapes (exact, `prefix*`, `*suffix`, `*`) skip the
//! general matcher.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Glob {
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Pattern(String),
}

fn is_wild(c: char) -> bool {
    c == '*' || c == '?'
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        if !pattern.is_empty() && pattern.chars().all(|c| c == '*') {
            return Glob::Any;
        }
        if !pattern.contains(is_wild) {
            return Glob::Exact(pattern.to_string());
        }
        let inner = |s: &str| !s.is_empty() && !s.contains(is_wild);
        if let Some(p) = pattern.strip_suffix('*')
            && inner(p)
        {
            return Glob::Prefix(p.to_string());
        }
        if let Some(s) = pattern.strip_prefix('*') {
            if inner(s) {
                return Glob::Suffix(s.to_string());
            }
            if let Some(m) = s.strip_suffix('*')
                && inner(m)
            {
                return Glob::Contains(m.to_string());
            }
        }
        Glob::Pattern(pattern.to_string())
    }

    pub fn matches(&self, text: &str) -> bool {
        match self {
            Glob::Any => true,
            Glob::Exact(e) => text == e,
            Glob::Prefix(p) => text.starts_with(p.as_str()),
            Glob::Suffix(s) => text.ends_with(s.as_str()),
            Glob::Contains(m) => text.contains(m.as_str()),
            Glob::Pattern(p) => wildcard(p.as_bytes(), text.as_bytes()),
        }
    }
}

/// Length of the UTF-8 character starting with byte `b`.
fn char_len(b: u8) -> usize {
    match b {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// Iterative wildcard matching with one backtrack point (linear-ish, no recursion).
fn wildcard(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(b'?') => {
                pi += 1;
                si += char_len(s[si]);
            }
            Some(&c) if c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    let next = ss + char_len(s[ss]);
                    star = Some((sp, next));
                    pi = sp + 1;
                    si = next;
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*') && si == s.len()
}

/// Any of several globs.
#[derive(Debug, Clone, Default)]
pub struct GlobSet {
    globs: Vec<Glob>,
    /// As given, to hand to a host that matches them itself.
    patterns: Vec<String>,
}

impl GlobSet {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> GlobSet {
        GlobSet {
            globs: patterns.iter().map(|p| Glob::new(p.as_ref())).collect(),
            patterns: patterns.iter().map(|p| p.as_ref().to_string()).collect(),
        }
    }

    /// The patterns as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    pub fn is_empty(&self) -> bool {
        self.globs.is_empty()
    }

    pub fn matches(&self, text: &str) -> bool {
        self.globs.iter().any(|g| g.matches(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(Glob::new("a.b"), Glob::Exact("a.b".into()));
        assert_eq!(Glob::new("http.*"), Glob::Prefix("http.".into()));
        assert_eq!(Glob::new("*.password"), Glob::Suffix(".password".into()));
        assert_eq!(Glob::new("*secret*"), Glob::Contains("secret".into()));
        assert_eq!(Glob::new("**"), Glob::Any);
        assert!(matches!(Glob::new("a*b?c"), Glob::Pattern(_)));
    }

    #[test]
    fn matching() {
        let m = |p: &str, s: &str| Glob::new(p).matches(s);
        assert!(m("*.password", "db.password"));
        assert!(!m("*.password", "password"));
        assert!(m("http.request.header.*", "http.request.header.authorization"));
        assert!(!m("http.request.header.*", "http.response.header.x"));
        assert!(m("a*b?c", "a__b_c"));
        assert!(m("a*b?c", "abbxc"));
        assert!(!m("a*b?c", "ab_cd"));
        assert!(m("GET /*/health", "GET /v1/health"));
        assert!(m("*", ""));
        assert!(!m("?", ""));
        assert!(m("caf?", "café"));
        assert!(m("*é*x", "aébéx"));
        assert!(m("a**", "a"));
        assert!(!m("", "a"));
        assert!(m("", ""));
    }
}
