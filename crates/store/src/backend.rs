//! The seam between the protocol front (connections, RESP, per-connection state) and the
//! data path (partitions, storage, replication, forwarding).
//!
//! A connection hands every data command (keyed ones and keyspace-wide ones such as
//! DBSIZE and SCAN) to a `Backend` and writes back the `Reply` it gets. The clustered
//! node implements it; a single in-memory partition implements it for narrow tests.

use crate::reply::Reply;
use futures::future::BoxFuture;

/// Figures a backend exposes for INFO and metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackendStats {
    /// Keys held by this node (all partitions it replicates).
    pub keys: u64,
    /// Keys with an expiry.
    pub expires: u64,
    /// Approximate bytes used by keys and values held in memory.
    pub used_memory_bytes: u64,
    /// `master` when this node is primary of at least one partition, else `slave`.
    pub role: &'static str,
    /// Ring epoch this node is serving, 0 before the first configuration.
    pub epoch: u64,
    pub partitions_primary: u32,
    pub partitions_replica: u32,
}

/// Executes data commands. `args[0]` is the command name as the client sent it.
pub trait Backend: Send + Sync + 'static {
    fn call(&self, args: Vec<Vec<u8>>) -> BoxFuture<'_, Reply>;

    /// Executes a connection's consecutive keyed commands (a pipeline), answering them
    /// in order as if they had been called one after another. A backend may run
    /// commands for the same partition as one unit (one lock, one replication round,
    /// one forward), which is where pipelining pays.
    fn call_batch(&self, commands: Vec<Vec<Vec<u8>>>) -> BoxFuture<'_, Vec<Reply>> {
        Box::pin(async move {
            let mut replies = Vec::with_capacity(commands.len());
            for args in commands {
                replies.push(self.call(args).await);
            }
            replies
        })
    }
    fn stats(&self) -> BackendStats;
}
