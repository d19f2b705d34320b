//! Hash commands.

use super::args::parse_i64;
use super::errors::{err, wrong_arity, HASH_NOT_INTEGER, NOT_INTEGER, OVERFLOW, WRONGTYPE};
use super::txn::{Txn, Typed};
use crate::reply::Reply;
use crate::value::{Entry, Value};
use std::collections::BTreeMap;

type Args = [Vec<u8>];
type Hash = BTreeMap<Vec<u8>, Vec<u8>>;

/// The hash at `key` (empty when missing) and its TTL, or WRONGTYPE.
fn load(t: &mut Txn, key: &[u8]) -> Result<(Hash, Option<u64>), Reply> {
    match t.hash(key) {
        Typed::Missing => Ok((Hash::new(), None)),
        Typed::Wrong => Err(err(WRONGTYPE)),
        Typed::Found(h, ttl) => Ok((h, ttl)),
    }
}

/// Stores a hash back; an empty hash deletes the key, as in Redis.
fn store(t: &mut Txn, key: &[u8], hash: Hash, ttl: Option<u64>) {
    if hash.is_empty() {
        t.delete(key);
    } else {
        t.put(
            key,
            Entry {
                value: Value::Hash(hash),
                expires_at_ms: ttl,
            },
        );
    }
}

/// HSET (answers fields added) and HMSET (answers OK).
pub(crate) fn hset(t: &mut Txn, args: &Args, name: &str) -> Reply {
    if args.len() % 2 == 1 {
        return wrong_arity(name);
    }
    let (mut hash, ttl) = match load(t, &args[1]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let mut added = 0;
    for pair in args[2..].chunks(2) {
        if hash.insert(pair[0].clone(), pair[1].clone()).is_none() {
            added += 1;
        }
    }
    store(t, &args[1], hash, ttl);
    if name == "hmset" {
        Reply::Simple("OK".into())
    } else {
        Reply::Integer(added)
    }
}

pub(crate) fn hsetnx(t: &mut Txn, args: &Args) -> Reply {
    let (mut hash, ttl) = match load(t, &args[1]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    if hash.contains_key(&args[2]) {
        return Reply::Integer(0);
    }
    hash.insert(args[2].clone(), args[3].clone());
    store(t, &args[1], hash, ttl);
    Reply::Integer(1)
}

pub(crate) fn hget(t: &mut Txn, args: &Args) -> Reply {
    match t.hash(&args[1]) {
        Typed::Missing => Reply::Nil,
        Typed::Wrong => err(WRONGTYPE),
        Typed::Found(mut h, _) => h.remove(&args[2]).map_or(Reply::Nil, Reply::Bulk),
    }
}

pub(crate) fn hmget(t: &mut Txn, args: &Args) -> Reply {
    let mut hash = match load(t, &args[1]) {
        Ok((h, _)) => h,
        Err(e) => return e,
    };
    Reply::Array(
        args[2..]
            .iter()
            .map(|f| hash.remove(f).map_or(Reply::Nil, Reply::Bulk))
            .collect(),
    )
}

pub(crate) fn hgetall(t: &mut Txn, args: &Args) -> Reply {
    match load(t, &args[1]) {
        Ok((h, _)) => Reply::Map(
            h.into_iter()
                .map(|(f, v)| (Reply::Bulk(f), Reply::Bulk(v)))
                .collect(),
        ),
        Err(e) => e,
    }
}

pub(crate) fn hkeys(t: &mut Txn, args: &Args, values: bool) -> Reply {
    match load(t, &args[1]) {
        Ok((h, _)) => Reply::Array(
            h.into_iter()
                .map(|(f, v)| Reply::Bulk(if values { v } else { f }))
                .collect(),
        ),
        Err(e) => e,
    }
}

pub(crate) fn hdel(t: &mut Txn, args: &Args) -> Reply {
    let (mut hash, ttl) = match load(t, &args[1]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let removed = args[2..]
        .iter()
        .filter(|f| hash.remove(f.as_slice()).is_some())
        .count();
    if removed > 0 {
        store(t, &args[1], hash, ttl);
    }
    Reply::Integer(removed as i64)
}

pub(crate) fn hexists(t: &mut Txn, args: &Args) -> Reply {
    match load(t, &args[1]) {
        Ok((h, _)) => Reply::Integer(i64::from(h.contains_key(&args[2]))),
        Err(e) => e,
    }
}

pub(crate) fn hlen(t: &mut Txn, args: &Args) -> Reply {
    match load(t, &args[1]) {
        Ok((h, _)) => Reply::Integer(h.len() as i64),
        Err(e) => e,
    }
}

pub(crate) fn hstrlen(t: &mut Txn, args: &Args) -> Reply {
    match load(t, &args[1]) {
        Ok((h, _)) => Reply::Integer(h.get(&args[2]).map_or(0, |v| v.len() as i64)),
        Err(e) => e,
    }
}

pub(crate) fn hincrby(t: &mut Txn, args: &Args) -> Reply {
    let Some(delta) = parse_i64(&args[3]) else {
        return err(NOT_INTEGER);
    };
    let (mut hash, ttl) = match load(t, &args[1]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let current = match hash.get(&args[2]) {
        None => 0,
        Some(v) => match parse_i64(v) {
            Some(n) => n,
            None => return err(HASH_NOT_INTEGER),
        },
    };
    let Some(next) = current.checked_add(delta) else {
        return err(OVERFLOW);
    };
    hash.insert(args[2].clone(), next.to_string().into_bytes());
    store(t, &args[1], hash, ttl);
    Reply::Integer(next)
}
