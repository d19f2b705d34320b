//! State shared by every connection of one server: configuration and counters for INFO.

use super::config::ServerConfig;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

pub(crate) struct Shared {
    pub config: ServerConfig,
    pub started: Instant,
    pub run_id: String,
    pub clients: AtomicUsize,
    pub next_client_id: AtomicU64,
    pub connections_received: AtomicU64,
    pub commands_processed: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub protocol_errors: AtomicU64,
}

impl Shared {
    pub fn new(config: ServerConfig) -> Self {
        let run_id = (0..40)
            .map(|_| char::from(b"0123456789abcdef"[rand::random_range(0..16usize)]))
            .collect();
        Shared {
            config,
            started: Instant::now(),
            run_id,
            clients: AtomicUsize::new(0),
            next_client_id: AtomicU64::new(1),
            connections_received: AtomicU64::new(0),
            commands_processed: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
        }
    }

    /// Counts a connection in if there is room; the guard counts it out when dropped.
    pub fn admit(self: &std::sync::Arc<Self>) -> Option<ClientSlot> {
        self.connections_received.fetch_add(1, Ordering::Relaxed);
        let admitted = self
            .clients
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.config.max_clients).then_some(n + 1)
            })
            .is_ok();
        if admitted {
            Some(ClientSlot(self.clone()))
        } else {
            self.rejected_connections.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

pub(crate) struct ClientSlot(std::sync::Arc<Shared>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::AcqRel);
    }
}
