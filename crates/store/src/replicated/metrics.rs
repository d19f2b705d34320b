//! Prometheus metrics of a replicated agent: what the comparison of strategies reads
//! (replication messages per session write) and what an operator watches (peers live,
//! anti-entropy repairs).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

pub struct AgentMetrics {
    pub registry: Registry,
    /// Client commands that changed at least one key.
    pub writes: Counter,
    /// Push messages (one batch to one peer) sent, and acknowledged.
    pub push_sent: Counter,
    pub push_acked: Counter,
    /// Records carried by push messages (a batch carries several).
    pub push_records: Counter,
    pub push_failed: Family<ReasonLabels, Counter>,
    /// Writes queued for nobody because the peer was not live (anti-entropy repairs).
    pub push_skipped: Counter,
    /// Sync writes answered without the ack of a peer that was live when they started.
    pub sync_degraded: Counter,
    pub ae_rounds: Counter,
    pub ae_messages: Counter,
    pub ae_keys_repaired: Counter,
    pub heartbeats: Counter,
    pub bootstrap_keys: Counter,
    pub peers_known: Gauge,
    pub peers_live: Gauge,
    pub keys: Gauge,
    pub ready: Gauge,
}

impl AgentMetrics {
    pub fn new() -> AgentMetrics {
        let mut registry = Registry::with_prefix("sessionplane_agent");
        let mut counter = |name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let writes = counter("writes", "Client commands that changed at least one key");
        let push_sent = counter(
            "push_messages_sent",
            "Push messages sent to peers (one batch of writes to one peer)",
        );
        let push_acked = counter("push_messages_acked", "Push messages a peer acknowledged");
        let push_records = counter("push_records_sent", "Key records carried by push messages");
        let push_skipped = counter(
            "push_skipped",
            "Writes not pushed to a peer that was not live (anti-entropy repairs them)",
        );
        let sync_degraded = counter(
            "sync_writes_degraded",
            "Sync writes answered after the failure-detector timeout without every live peer's ack",
        );
        let ae_rounds = counter("anti_entropy_rounds", "Anti-entropy rounds started");
        let ae_messages = counter(
            "anti_entropy_messages",
            "Anti-entropy messages sent (digests and repairs)",
        );
        let ae_keys_repaired = counter(
            "anti_entropy_keys_repaired",
            "Keys this agent changed because of anti-entropy",
        );
        let heartbeats = counter("heartbeats_sent", "Failure-detector pings sent");
        let bootstrap_keys = counter("bootstrap_keys", "Records pulled from a peer at start");
        let push_failed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "push_messages_failed",
            "Push messages that got no ack, by reason",
            push_failed.clone(),
        );
        let mut gauge = |name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let peers_known = gauge("peers_known", "Peers found by DNS or the peer list");
        let peers_live = gauge("peers_live", "Peers the failure detector holds live");
        let keys = gauge("keys", "Keys holding a live value");
        let ready = gauge("ready", "1 once the agent has pulled a full state");
        AgentMetrics {
            registry,
            writes,
            push_sent,
            push_acked,
            push_records,
            push_failed,
            push_skipped,
            sync_degraded,
            ae_rounds,
            ae_messages,
            ae_keys_repaired,
            heartbeats,
            bootstrap_keys,
            peers_known,
            peers_live,
            keys,
            ready,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self::new()
    }
}
