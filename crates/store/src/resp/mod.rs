//! RESP, the Redis serialization protocol: requests in (multibulk and inline), replies out
//! in RESP2 or RESP3, and replies in (for a node that forwards a command and relays the
//! answer). Every length a peer declares is checked against `Limits` before anything is
//! buffered for it, and nothing is preallocated from a declared length.

mod encode;
mod error;
mod reply_parser;
mod request;

pub use encode::{encode, encode_request};
pub use error::ProtocolError;
pub use reply_parser::parse_reply;
pub use request::RequestParser;

/// The protocol version a connection speaks (HELLO switches it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

impl Protocol {
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// Bounds on what a peer may declare or send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string (a key or a value), like Redis's proto-max-bulk-len.
    pub max_bulk_len: usize,
    /// Most elements in one multibulk request or reply aggregate.
    pub max_multibulk_len: usize,
    /// Longest inline command or header line.
    pub max_inline_len: usize,
    /// Deepest nesting of aggregates in a reply.
    pub max_depth: usize,
    /// Most bytes of arguments in one request.
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 16 * 1024 * 1024,
            max_multibulk_len: 1024 * 1024,
            max_inline_len: 64 * 1024,
            max_depth: 32,
            max_request_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Redis's tighter limits for a connection that has not authenticated yet.
pub const UNAUTHENTICATED_MAX_MULTIBULK: usize = 10;
pub const UNAUTHENTICATED_MAX_BULK: usize = 16 * 1024;

#[cfg(test)]
mod tests;
