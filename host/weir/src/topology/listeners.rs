//! The receivers' listeners: one per (receiver, transport), each with its own
//! shutdown so a reload can stop one while the others serve.
//!
//! A listener whose address is unchanged keeps its socket. When only its
//! limits (or the receiver's `max_request_size`) change, a new accept loop
//! starts on a duplicate of the same socket before the old loop stops, so no
//! connection attempt is refused; a moved listener is bound at its new address
//! before the old one stops accepting. The old loop finishes its in-flight
//! requests within `service.shutdown_grace`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use weir_otlp::receiver::listen::{self, AtFdLimit, ListenerSpec};
use weir_otlp::receiver::{self, Authenticator, ConnectionMetrics, Protocol, Receiver, Shutdown};
use weir_otlp::tls::ServerTls;
use weir_otlp::tls::server::{ALPN_H2, ALPN_HTTP};
use weir_pipeline::config::{
    AuthConfig, Config, ConfigError, ConnectionLimits, ReceiverConfig, TlsServerConfig,
};

/// (receiver name, "grpc" | "http").
pub type ListenerKey = (String, &'static str);

/// What the config asks of one listener.
#[derive(Clone, Debug, PartialEq)]
pub struct Wanted {
    pub address: String,
    pub limits: ConnectionLimits,
    pub max_request_size: usize,
    /// A change rebuilds the listener (on a duplicate of its socket).
    pub tls: Option<TlsServerConfig>,
    pub auth: Option<AuthConfig>,
}

/// The listeners `config` defines.
pub fn wanted(config: &Config) -> BTreeMap<ListenerKey, Wanted> {
    let mut out = BTreeMap::new();
    for (name, rc) in &config.receivers {
        let ReceiverConfig::Otlp(otlp) = rc;
        let (grpc, http) = otlp.listeners();
        let (grpc_limits, http_limits) = otlp.limits();
        let tls_of =
            |l: &Option<weir_pipeline::config::ListenerConfig>| l.as_ref().and_then(|l| l.tls.clone());
        for (transport, address, limits, tls) in [
            ("grpc", grpc, grpc_limits, tls_of(&otlp.grpc)),
            ("http", http, http_limits, tls_of(&otlp.http)),
        ] {
            if let Some(address) = address {
                out.insert(
                    (name.clone(), transport),
                    Wanted {
                        address: address.to_string(),
                        limits,
                        max_request_size: otlp.max_request_size.as_usize(),
                        tls,
                        auth: otlp.auth.clone(),
                    },
                );
            }
        }
    }
    out
}

/// A socket ready to serve: freshly bound, or a duplicate of a running one;
/// with its TLS and tokens once [`Bound::secure`] loaded them.
pub struct Bound {
    socket: std::net::TcpListener,
    pub local: SocketAddr,
    tls: Option<ServerTls>,
    auth: Option<Authenticator>,
}

impl Bound {
    /// Loads the listener's certificates and tokens; errors name their key.
    pub fn secure(mut self, key: &ListenerKey, wanted: &Wanted) -> Result<Bound, ConfigError> {
        (self.tls, self.auth) = security(key, wanted)?;
        Ok(self)
    }

    /// The tokens its requests must carry.
    pub fn auth(&self) -> Option<Authenticator> {
        self.auth.clone()
    }
}

/// A listener's TLS and tokens, loaded from the files `wanted` names.
fn security(
    key: &ListenerKey,
    wanted: &Wanted,
) -> Result<(Option<ServerTls>, Option<Authenticator>), ConfigError> {
    let tls = match &wanted.tls {
        Some(tls) => {
            let alpn = if key.1 == "grpc" { ALPN_H2 } else { ALPN_HTTP };
            let loaded = ServerTls::load(tls, &format!("receivers.{}.{}.tls", key.0, key.1), alpn)
                .map_err(|e| ConfigError::new(e.key, e.kind.to_string()))?;
            Some(loaded)
        }
        None => None,
    };
    let auth = match &wanted.auth {
        Some(auth) => Some(Authenticator::load(auth, &format!("receivers.{}.auth", key.0))?),
        None => None,
    };
    Ok((tls, auth))
}

/// Loads every certificate, key, CA and token file `config` names (listeners,
/// admin, https exporters) without opening a port, for `weir validate`.
pub fn check_security(config: &Config) -> Result<(), Vec<ConfigError>> {
    let mut errors = Vec::new();
    let tls_error = |e: weir_otlp::tls::TlsError| ConfigError::new(e.key, e.kind.to_string());
    for (key, wanted) in wanted(config) {
        if let Err(e) = security(&key, &wanted) {
            errors.push(e);
        }
    }
    if let Some(tls) = &config.admin.tls
        && let Err(e) = ServerTls::load(tls, "admin.tls", ALPN_HTTP)
    {
        errors.push(tls_error(e));
    }
    if let Some(auth) = &config.admin.auth
        && let Err(e) = Authenticator::load(auth, "admin.auth")
    {
        errors.push(e);
    }
    for (name, exporter) in &config.exporters {
        if let weir_pipeline::config::ExporterConfig::OtlpGrpc(c)
        | weir_pipeline::config::ExporterConfig::OtlpHttp(c) = exporter
            && c.endpoint.starts_with("https://")
            && let Err(e) =
                weir_otlp::tls::ClientTls::load(c.tls.as_ref(), &format!("exporters.{name}.tls"), &[])
        {
            errors.push(tls_error(e));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// Warns about every listener reachable beyond loopback without TLS or
/// without authentication (run on every start and reload).
pub fn warn_exposed(config: &Config) {
    let admin = &config.admin;
    let admin_mutual = admin.tls.as_ref().is_some_and(|t| t.client_ca_file.is_some());
    warn_if_exposed(
        "admin",
        &admin.address,
        admin.tls.is_some(),
        admin.auth.is_some() || admin_mutual,
    );
    for (key, wanted) in wanted(config) {
        let what = format!("receivers.{}.{}", key.0, key.1);
        let mutual = wanted.tls.as_ref().is_some_and(|t| t.client_ca_file.is_some());
        warn_if_exposed(
            &what,
            &wanted.address,
            wanted.tls.is_some(),
            wanted.auth.is_some() || mutual,
        );
    }
}

/// The warning for one listener at `address` (`what` is its config key).
pub fn warn_if_exposed(what: &str, address: &str, tls: bool, authenticated: bool) {
    let Ok(addr) = address.parse::<SocketAddr>() else {
        return;
    };
    if addr.ip().is_loopback() || (tls && authenticated) {
        return;
    }
    let missing = match (tls, authenticated) {
        (false, false) => "without TLS or authentication",
        (false, true) => "without TLS (tokens and data travel in clear text)",
        _ => "without authentication (anyone who can reach it may send data)",
    };
    tracing::warn!(
        listener = %what, %address,
        "listening beyond loopback {missing}; set {what}.tls and an auth table (or client_ca_file), or listen on 127.0.0.1"
    );
}

/// Binds `wanted.address`; the error names the config key.
pub fn bind(key: &ListenerKey, wanted: &Wanted) -> Result<Bound, ConfigError> {
    let config_key = format!("receivers.{}.{}.address", key.0, key.1);
    let addr: SocketAddr = wanted
        .address
        .parse()
        .map_err(|_| ConfigError::new(&config_key, format!("invalid address {:?}", wanted.address)))?;
    let socket = std::net::TcpListener::bind(addr)
        .map_err(|e| ConfigError::new(&config_key, format!("cannot listen on {addr}: {e}")))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| ConfigError::new(&config_key, format!("cannot prepare the listener: {e}")))?;
    let local = socket.local_addr().unwrap_or(addr);
    Ok(Bound {
        socket,
        local,
        tls: None,
        auth: None,
    })
}

pub struct Running {
    pub wanted: Wanted,
    pub local: SocketAddr,
    /// A duplicate of the served socket, for a new accept loop on the same address.
    socket: std::net::TcpListener,
    shutdown: Shutdown,
}

impl Running {
    /// A duplicate of this listener's socket.
    pub fn duplicate(&self, key: &ListenerKey) -> Result<Bound, ConfigError> {
        let socket = self.socket.try_clone().map_err(|e| {
            ConfigError::new(
                format!("receivers.{}.{}", key.0, key.1),
                format!("cannot reuse the listening socket: {e}"),
            )
        })?;
        Ok(Bound {
            socket,
            local: self.local,
            tls: None,
            auth: None,
        })
    }

    /// Stops accepting; in-flight requests may finish until `deadline`.
    pub fn stop(&self, deadline: Instant) {
        self.shutdown.begin(deadline);
    }
}

/// Every listener's accept loop, and the channel that reports one that ended
/// without being asked to.
pub struct Servers {
    tasks: JoinSet<()>,
    metrics: ConnectionMetrics,
    failed: mpsc::UnboundedSender<String>,
}

impl Servers {
    pub fn new(metrics: ConnectionMetrics) -> (Self, mpsc::UnboundedReceiver<String>) {
        let (failed, failures) = mpsc::unbounded_channel();
        (
            Servers {
                tasks: JoinSet::new(),
                metrics,
                failed,
            },
            failures,
        )
    }

    /// Starts serving `bound` for `key`.
    pub fn serve(
        &mut self,
        key: &ListenerKey,
        wanted: Wanted,
        bound: Bound,
        receiver: Receiver,
    ) -> std::io::Result<Running> {
        let keep = bound.socket.try_clone()?;
        let listener = tokio::net::TcpListener::from_std(bound.socket)?;
        let protocol = match key.1 {
            "grpc" => Protocol::Http2Only,
            _ => Protocol::Auto,
        };
        let spec = ListenerSpec {
            receiver: key.0.clone(),
            transport: key.1,
            config_key: format!("receivers.{}.{}", key.0, key.1),
            limits: wanted.limits.clone(),
            protocol,
            at_fd_limit: AtFdLimit::Shed,
            tls: bound.tls,
        };
        let auth = receiver.auth.is_some();
        let router = match protocol {
            Protocol::Http2Only => receiver::grpc::router(receiver),
            Protocol::Auto => receiver::http::router(receiver),
        };
        let shutdown = Shutdown::new();
        let (stop, metrics, failed) = (shutdown.clone(), self.metrics.clone(), self.failed.clone());
        let what = spec.config_key.clone();
        tracing::info!(
            listener = %what, address = %bound.local, tls = spec.tls.is_some(), auth,
            "OTLP receiver listening"
        );
        self.tasks.spawn(async move {
            listen::serve(listener, router, spec, &metrics, stop.clone()).await;
            if stop.deadline().is_none() {
                // The receiver may be gone already; nothing else to tell.
                let _ = failed.send(what);
            }
        });
        Ok(Running {
            wanted,
            local: bound.local,
            socket: keep,
            shutdown,
        })
    }

    /// Waits for every accept loop to finish (each returns by its deadline).
    pub async fn finish(&mut self, deadline: Instant) {
        let all = async { while self.tasks.join_next().await.is_some() {} };
        // The margin is for the last connection drops after the deadline.
        if tokio::time::timeout_at(deadline + std::time::Duration::from_millis(200), all)
            .await
            .is_err()
        {
            tracing::warn!("receivers did not close their connections by the shutdown deadline");
        }
    }

    /// Forgets accept loops that have ended (listeners a reload stopped).
    pub fn reap(&mut self) {
        while self.tasks.try_join_next().is_some() {}
    }
}
