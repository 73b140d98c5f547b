//! Bearer-token authentication of receivers (and the admin server): the
//! accepted tokens come from files and environment variables, several at
//! once so clients can rotate; a request must carry one as
//! `authorization: Bearer <token>`. Tokens are kept as SHA-256 digests and
//! every one is compared, in constant time, so neither the comparison's
//! duration nor an early exit says how much of a guess was right.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use weir_pipeline::config::{AuthConfig, ConfigError};

use crate::tls::watch::{self, Refresh, fingerprint};

/// What a token in the config stands for.
struct Accepted {
    digest: [u8; 32],
    tenant: Option<Arc<str>>,
}

struct Tokens {
    config: AuthConfig,
    key: String,
    current: ArcSwap<Vec<Accepted>>,
    seen: Mutex<[u8; 32]>,
}

/// The tokens a listener accepts; cheap to clone.
#[derive(Clone)]
pub struct Authenticator(Arc<Tokens>);

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens.
        f.debug_struct("Authenticator")
            .field("key", &self.0.key)
            .finish_non_exhaustive()
    }
}

/// A request that carried an accepted token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// The token's tenant, if it has one.
    pub tenant: Option<Arc<str>>,
}

type Sources = Vec<(PathBuf, std::io::Result<Vec<u8>>)>;

/// Reads every file source (env sources are part of the fingerprint too, as
/// pseudo-paths, so a reload of the config rereads them).
fn read_sources(config: &AuthConfig) -> Sources {
    config
        .tokens
        .iter()
        .map(|t| match (&t.file, &t.env) {
            (Some(f), _) => (f.clone(), std::fs::read(f)),
            (None, Some(v)) => (
                PathBuf::from(format!("env:{v}")),
                std::env::var(v)
                    .map(String::into_bytes)
                    .map_err(std::io::Error::other),
            ),
            (None, None) => (PathBuf::new(), Ok(Vec::new())),
        })
        .collect()
}

fn tokens_in(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|b| *b == b'\n')
        .map(|l| l.trim_ascii())
        .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
}

fn build(config: &AuthConfig, key: &str, sources: &Sources) -> Result<Vec<Accepted>, ConfigError> {
    let mut out = Vec::new();
    for (i, (t, (path, content))) in config.tokens.iter().zip(sources).enumerate() {
        let (k, what) = match (&t.file, &t.env) {
            (Some(f), _) => (format!("{key}.tokens[{i}].file"), format!("{}", f.display())),
            (None, Some(v)) => (
                format!("{key}.tokens[{i}].env"),
                format!("environment variable {v}"),
            ),
            (None, None) => continue,
        };
        let bytes = match content {
            Ok(b) => b,
            Err(e) if t.file.is_some() => {
                return Err(ConfigError::new(
                    k,
                    format!(
                        "cannot read {}: {e}; check the path and that weir may read the file",
                        path.display()
                    ),
                ));
            }
            Err(_) => {
                return Err(ConfigError::new(
                    k,
                    format!("{what} is not set; set it or remove this entry"),
                ));
            }
        };
        let before = out.len();
        let tenant: Option<Arc<str>> = t.tenant.as_deref().map(Arc::from);
        for token in tokens_in(bytes) {
            out.push(Accepted {
                digest: Sha256::digest(token).into(),
                tenant: tenant.clone(),
            });
        }
        if out.len() == before {
            return Err(ConfigError::new(
                k,
                format!("{what} holds no token; write one token per line"),
            ));
        }
    }
    Ok(out)
}

impl Authenticator {
    /// Loads the tokens `config` names; errors name the entry's key under `key`.
    pub fn load(config: &AuthConfig, key: &str) -> Result<Self, ConfigError> {
        let sources = read_sources(config);
        let accepted = build(config, key, &sources)?;
        let tokens = Arc::new(Tokens {
            config: config.clone(),
            key: key.to_string(),
            current: ArcSwap::from_pointee(accepted),
            seen: Mutex::new(fingerprint(&sources)),
        });
        if config.tokens.iter().any(|t| t.file.is_some()) {
            watch::poll(&tokens, config.reload_interval.0, key);
        }
        Ok(Authenticator(tokens))
    }

    /// The resource attribute that carries a token's tenant.
    pub fn tenant_attribute(&self) -> &str {
        &self.0.config.tenant_attribute
    }

    /// Whether `headers` carry an accepted bearer token.
    pub fn check(&self, headers: &HeaderMap) -> Option<Authenticated> {
        let value = headers.get(http::header::AUTHORIZATION)?.as_bytes();
        let (scheme, token) = value.split_at_checked(7)?;
        if !scheme.eq_ignore_ascii_case(b"bearer ") {
            return None;
        }
        let digest: [u8; 32] = Sha256::digest(token.trim_ascii()).into();
        let accepted = self.0.current.load();
        let mut found = subtle::Choice::from(0);
        let mut tenant = None;
        // Every entry is compared: no early exit.
        for a in accepted.iter() {
            let hit = a.digest.ct_eq(&digest);
            if bool::from(hit & !found) {
                tenant = a.tenant.clone();
            }
            found |= hit;
        }
        bool::from(found).then_some(Authenticated { tenant })
    }

    /// Rereads the token files now (the poll does this every `reload_interval`).
    pub fn refresh(&self) {
        self.0.refresh();
    }
}

/// `router` with every path but `open` requiring an accepted token (401
/// without detail otherwise): the admin server, whose /health and /ready
/// probes stay open.
pub fn require(router: axum::Router, auth: Authenticator, open: &'static [&'static str]) -> axum::Router {
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let allowed = open.contains(&req.uri().path()) || auth.check(req.headers()).is_some();
            async move {
                if allowed {
                    next.run(req).await
                } else {
                    super::http::unauthorized()
                }
            }
        },
    ))
}

impl Refresh for Tokens {
    fn refresh(&self) {
        let sources = read_sources(&self.config);
        let print = fingerprint(&sources);
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if *seen == print {
                return;
            }
            *seen = print;
        }
        match build(&self.config, &self.key, &sources) {
            Ok(accepted) => {
                let n = accepted.len();
                self.current.store(Arc::new(accepted));
                tracing::info!(key = %self.key, tokens = n, "accepted tokens reloaded");
            }
            Err(e) => tracing::error!(
                error = %e,
                "the changed token files were not loaded; the previous tokens stay accepted"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use weir_pipeline::config::{HumanDuration, TokenSource};

    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, v.parse().expect("header"));
        h
    }

    fn config(dir: &std::path::Path) -> AuthConfig {
        AuthConfig {
            tokens: vec![
                TokenSource {
                    file: Some(dir.join("a")),
                    env: None,
                    tenant: Some("team-a".into()),
                },
                TokenSource {
                    file: Some(dir.join("b")),
                    env: None,
                    tenant: None,
                },
            ],
            tenant_attribute: "tenant".into(),
            reload_interval: HumanDuration::from_secs(0),
        }
    }

    #[test]
    fn accepts_any_listed_token_and_maps_its_tenant() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("a"), "# team a\nold-a\n\nnew-a\n").expect("write");
        std::fs::write(dir.path().join("b"), "plain\n").expect("write");
        let auth = Authenticator::load(&config(dir.path()), "receivers.r.auth").expect("load");
        let team_a = Some(Authenticated {
            tenant: Some(Arc::from("team-a")),
        });
        assert_eq!(auth.check(&headers("Bearer old-a")), team_a);
        assert_eq!(auth.check(&headers("bearer new-a")), team_a);
        assert_eq!(
            auth.check(&headers("Bearer plain")),
            Some(Authenticated { tenant: None })
        );
        assert_eq!(auth.check(&headers("Bearer wrong")), None);
        assert_eq!(auth.check(&headers("Basic plain")), None);
        assert_eq!(auth.check(&headers("Bearer ")), None);
        assert_eq!(auth.check(&HeaderMap::new()), None);
        assert!(!format!("{auth:?}").contains("plain"));
    }

    #[test]
    fn token_files_are_reread_and_a_bad_change_keeps_the_old_tokens() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("a"), "one\n").expect("write");
        std::fs::write(dir.path().join("b"), "two\n").expect("write");
        let auth = Authenticator::load(&config(dir.path()), "receivers.r.auth").expect("load");
        std::fs::write(dir.path().join("a"), "three\n").expect("write");
        auth.refresh();
        assert!(auth.check(&headers("Bearer one")).is_none());
        assert!(auth.check(&headers("Bearer three")).is_some());
        std::fs::write(dir.path().join("a"), "\n# nothing\n").expect("write");
        auth.refresh();
        assert!(auth.check(&headers("Bearer three")).is_some());
    }

    #[test]
    fn missing_and_empty_sources_name_their_key() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("a"), "\n").expect("write");
        let e = Authenticator::load(&config(dir.path()), "receivers.r.auth").expect_err("empty");
        assert_eq!(e.key, "receivers.r.auth.tokens[0].file");
        assert!(e.message.contains("holds no token"), "{e}");
        std::fs::write(dir.path().join("a"), "x\n").expect("write");
        let e = Authenticator::load(&config(dir.path()), "receivers.r.auth").expect_err("missing");
        assert_eq!(e.key, "receivers.r.auth.tokens[1].file");
        let mut c = config(dir.path());
        c.tokens[1] = TokenSource {
            file: None,
            env: Some("WEIR_TEST_SURELY_UNSET_TOKEN".into()),
            tenant: None,
        };
        let e = Authenticator::load(&c, "admin.auth").expect_err("unset");
        assert_eq!(e.key, "admin.auth.tokens[1].env");
    }
}
