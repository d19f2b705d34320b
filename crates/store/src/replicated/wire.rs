//! Messages between agents, over the store's internal RPC framing (length-delimited
//! postcard frames, one request in flight per connection).

use super::state::Record;
use serde::{Deserialize, Serialize};

pub type Records = Vec<(Vec<u8>, Record)>;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Failure detector heartbeat; also tells the caller who answers on that address,
    /// and the receiver where the caller listens (so a new agent is pushed to from its
    /// first ping on, before DNS lists it).
    Ping { from: String, addr: Option<String> },
    /// Writes pushed as they happen, batched per peer connection.
    Push { from: String, records: Records },
    /// Anti-entropy, step 1: the caller's digest per bucket. Answered with the
    /// receiver's records of the buckets that differ.
    Digest { from: String, digests: Vec<u64> },
    /// Anti-entropy, step 2: the caller's records of the differing buckets.
    Repair { from: String, records: Records },
    /// Bootstrap: every record of these buckets.
    Fetch { buckets: Vec<u32> },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PeerResponse {
    /// `peers`: the peer addresses the receiver holds live, so a new agent introduces
    /// itself to every agent, also those its own DNS answer does not list yet.
    Pong {
        id: String,
        ready: bool,
        peers: Vec<String>,
    },
    /// How many of the records changed the receiver's state.
    Applied {
        changed: u32,
    },
    Records {
        records: Records,
        differing: Vec<u32>,
    },
    /// The receiver is still bootstrapping and has no full state to give.
    NotReady,
    Error(String),
}
