//! Connection counters of the listeners (receivers and admin):
//! `weir_receiver_connections{receiver,transport}` (open now),
//! `weir_receiver_connections_refused_total{receiver,transport,reason}` (closed at
//! accept: `max_connections`, `fd_limit`, or a failed TLS handshake: `tls_handshake`) and
//! `weir_receiver_connections_timed_out_total{receiver,transport,reason}`
//! (`header_read_timeout` or `idle_timeout`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use weir_pipeline::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub receiver: String,
    pub transport: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionReasonLabels {
    pub receiver: String,
    pub transport: String,
    pub reason: String,
}

/// Shared by all listeners; cheap to clone.
#[derive(Clone, Default)]
pub struct ConnectionMetrics {
    open: Family<ListenerLabels, Gauge>,
    refused: Family<ConnectionReasonLabels, Counter>,
    timed_out: Family<ConnectionReasonLabels, Counter>,
}

impl ConnectionMetrics {
    /// Registers the families in `metrics`; call once per process.
    pub fn register(metrics: &Metrics) -> Self {
        let m = ConnectionMetrics::default();
        metrics.register(
            "receiver_connections",
            "Connections open now on a listener",
            m.open.clone(),
        );
        metrics.register(
            "receiver_connections_refused",
            "Connections closed right after accept, by reason (max_connections, fd_limit, tls_handshake)",
            m.refused.clone(),
        );
        metrics.register(
            "receiver_connections_timed_out",
            "Connections closed for sending no request in time, by reason (header_read_timeout, idle_timeout)",
            m.timed_out.clone(),
        );
        m
    }

    pub(crate) fn for_listener(&self, receiver: &str, transport: &str) -> ListenerMetrics {
        let reason = |family: &Family<ConnectionReasonLabels, Counter>, reason: &str| {
            family
                .get_or_create(&ConnectionReasonLabels {
                    receiver: receiver.into(),
                    transport: transport.into(),
                    reason: reason.into(),
                })
                .clone()
        };
        ListenerMetrics {
            open: self
                .open
                .get_or_create(&ListenerLabels {
                    receiver: receiver.into(),
                    transport: transport.into(),
                })
                .clone(),
            refused_max_connections: reason(&self.refused, "max_connections"),
            refused_fd_limit: reason(&self.refused, "fd_limit"),
            tls_handshake_failed: reason(&self.refused, "tls_handshake"),
            header_read_timeout: reason(&self.timed_out, "header_read_timeout"),
            idle_timeout: reason(&self.timed_out, "idle_timeout"),
        }
    }
}

/// One listener's series, resolved once so the accept loop does no label lookups.
#[derive(Clone)]
pub(crate) struct ListenerMetrics {
    pub open: Gauge,
    pub refused_max_connections: Counter,
    pub refused_fd_limit: Counter,
    pub tls_handshake_failed: Counter,
    pub header_read_timeout: Counter,
    pub idle_timeout: Counter,
}
