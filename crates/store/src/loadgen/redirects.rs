//! Redis Cluster redirections, followed the way cluster-aware client libraries
//! (redis-py's `RedisCluster`, Jedis, ioredis) follow them, so the load generator can
//! drive a Redis Cluster as a real application would while it reshards:
//!
//! - a slot map learned from `CLUSTER SLOTS` and from every `-MOVED slot host:port`
//!   reply, so a key goes straight to the node that owns its slot;
//! - `-ASK slot host:port` (the slot is migrating and this key already left): `ASKING`
//!   then the command on the target, once, without updating the map;
//! - one connection per node, opened on demand.
//!
//! A redirect is not an error: only what a cluster client would surface to the
//! application (a failed connection, a timeout, an error reply other than a redirect,
//! or more hops than `MAX_HOPS`) reaches the caller. The sessionplane store needs none
//! of this (any node serves any key), so the generator uses it only when
//! `LoadConfig::follow_cluster_redirects` is set.

use super::client::{ClientError, RespClient};
use crate::reply::Reply;
use std::collections::HashMap;
use std::time::Duration;

/// Redis Cluster's slot count.
pub const SLOTS: u16 = 16384;
/// Redirections followed for one command before its last reply is returned as is.
const MAX_HOPS: usize = 5;

/// The slot of `key` by Redis Cluster's rule: CRC16 (XMODEM) of the hash tag, mod 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16_xmodem(sessionplane_ring::hash_tag(key)) % SLOTS
}

/// CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster
/// hashes keys with; bitwise, as the slot map is hot but keys are short.
fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

enum Redirect {
    Moved { slot: u16, addr: String },
    Ask { addr: String },
}

fn redirect_of(reply: &Reply) -> Option<Redirect> {
    let Reply::Error(text) = reply else {
        return None;
    };
    let mut words = text.split_whitespace();
    let kind = words.next()?;
    let slot = words.next()?.parse::<u16>().ok()?;
    let addr = words.next()?.to_string();
    match kind {
        "MOVED" => Some(Redirect::Moved { slot, addr }),
        "ASK" => Some(Redirect::Ask { addr }),
        _ => None,
    }
}

/// One client's view of a Redis Cluster: where each slot lives, and a connection per
/// node it has talked to.
#[derive(Default)]
pub struct Redirects {
    slots: HashMap<u16, String>,
    conns: HashMap<String, RespClient>,
    /// MOVED and ASK replies followed so far.
    pub followed: u64,
}

impl Redirects {
    /// Fills the slot map from `CLUSTER SLOTS` on `client`'s node, as client libraries do
    /// at start-up. Returns the number of slots mapped.
    pub async fn learn(
        &mut self,
        client: &mut RespClient,
        timeout: Duration,
    ) -> Result<usize, ClientError> {
        let reply = client.call(&[b"CLUSTER", b"SLOTS"], timeout).await?;
        let Reply::Array(ranges) = reply else {
            return Err(ClientError::Protocol(format!(
                "CLUSTER SLOTS answered {reply:?}"
            )));
        };
        let mut mapped = 0;
        for range in ranges {
            let Reply::Array(fields) = range else {
                continue;
            };
            let (
                Some(Reply::Integer(start)),
                Some(Reply::Integer(end)),
                Some(Reply::Array(master)),
            ) = (fields.first(), fields.get(1), fields.get(2))
            else {
                continue;
            };
            let (Some(Reply::Bulk(host)), Some(Reply::Integer(port))) =
                (master.first(), master.get(1))
            else {
                continue;
            };
            let addr = format!("{}:{port}", String::from_utf8_lossy(host));
            for slot in *start..=*end {
                if let Ok(slot) = u16::try_from(slot) {
                    self.slots.insert(slot, addr.clone());
                    mapped += 1;
                }
            }
        }
        Ok(mapped)
    }

    /// How many slots the map places on `addr`.
    pub fn slots_of(&self, addr: &str) -> usize {
        self.slots.values().filter(|a| a.as_str() == addr).count()
    }

    /// The node the map says owns `key`'s slot, if it knows.
    pub fn owner(&self, key: &[u8]) -> Option<&str> {
        self.slots.get(&key_slot(key)).map(String::as_str)
    }

    /// Runs `args` (whose key is `key`) on the node owning the key's slot, following
    /// redirections; `home` is the caller's own connection, used when the map points at
    /// its node or does not know the slot.
    pub async fn call(
        &mut self,
        home: &mut RespClient,
        key: &[u8],
        args: &[&[u8]],
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        let mut target = self
            .slots
            .get(&key_slot(key))
            .filter(|a| a.as_str() != home.addr())
            .cloned();
        let mut asking = false;
        let mut hops = 0;
        loop {
            let reply = match &target {
                None => home.call(args, timeout).await?,
                Some(addr) => self.call_on(addr, asking, args, timeout).await?,
            };
            let Some(redirect) = redirect_of(&reply) else {
                return Ok(reply);
            };
            if hops == MAX_HOPS {
                return Ok(reply);
            }
            hops += 1;
            self.followed += 1;
            let addr = match redirect {
                Redirect::Moved { slot, addr } => {
                    self.slots.insert(slot, addr.clone());
                    asking = false;
                    addr
                }
                Redirect::Ask { addr } => {
                    asking = true;
                    addr
                }
            };
            target = (addr != home.addr() || asking).then_some(addr);
        }
    }

    /// One command on the connection to `addr` (opened if needed, dropped on failure so
    /// the next call reconnects).
    async fn call_on(
        &mut self,
        addr: &str,
        asking: bool,
        args: &[&[u8]],
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        if !self.conns.contains_key(addr) {
            let conn = RespClient::connect(addr, timeout).await?;
            self.conns.insert(addr.to_string(), conn);
        }
        let Some(conn) = self.conns.get_mut(addr) else {
            return Err(ClientError::Closed);
        };
        let result = async {
            if asking {
                conn.call(&[b"ASKING"], timeout).await?;
            }
            conn.call(args, timeout).await
        }
        .await;
        if result.is_err() {
            self.conns.remove(addr);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis_cluster() {
        // Values from Redis Cluster's specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_ne!(
            key_slot(b"{user1000}.following"),
            key_slot(b"user1000.following")
        );
    }

    #[test]
    fn redirects_are_parsed_and_other_errors_are_not() {
        let moved = Reply::Error("MOVED 3999 127.0.0.1:6381".into());
        assert!(matches!(
            redirect_of(&moved),
            Some(Redirect::Moved { slot: 3999, ref addr }) if addr == "127.0.0.1:6381"
        ));
        let ask = Reply::Error("ASK 3999 127.0.0.1:6381".into());
        assert!(matches!(redirect_of(&ask), Some(Redirect::Ask { .. })));
        assert!(redirect_of(&Reply::Error("ERR unknown command".into())).is_none());
        assert!(redirect_of(&Reply::Simple("OK".into())).is_none());
    }
}
