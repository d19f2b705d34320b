//! A command's reply, independent of the protocol version it is written in.

use serde::{Deserialize, Serialize};

/// A reply; encoded as RESP2 or RESP3 by the connection that owns the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`: the full text including the error code prefix.
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    /// Null bulk in RESP2, `_` in RESP3.
    Nil,
    /// Null array in RESP2 (`*-1`), `_` in RESP3.
    NilArray,
    Array(Vec<Reply>),
    /// RESP3 map; a flat array in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// RESP3 set; an array in RESP2.
    Set(Vec<Reply>),
    /// RESP3 double; a bulk string in RESP2.
    Double(f64),
    /// RESP3 boolean; integer 1/0 in RESP2.
    Boolean(bool),
    /// RESP3 verbatim string (format, text); a bulk string in RESP2.
    Verbatim(String, String),
}
