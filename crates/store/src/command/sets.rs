//! Set commands.

use super::errors::{err, WRONGTYPE};
use super::txn::{Txn, Typed};
use crate::reply::Reply;
use crate::value::{Entry, Value};
use std::collections::BTreeSet;

type Args = [Vec<u8>];

fn load(t: &mut Txn, key: &[u8]) -> Result<(BTreeSet<Vec<u8>>, Option<u64>), Reply> {
    match t.set(key) {
        Typed::Missing => Ok((BTreeSet::new(), None)),
        Typed::Wrong => Err(err(WRONGTYPE)),
        Typed::Found(s, ttl) => Ok((s, ttl)),
    }
}

fn store(t: &mut Txn, key: &[u8], set: BTreeSet<Vec<u8>>, ttl: Option<u64>) {
    if set.is_empty() {
        t.delete(key);
    } else {
        t.put(
            key,
            Entry {
                value: Value::Set(set),
                expires_at_ms: ttl,
            },
        );
    }
}

pub(crate) fn sadd(t: &mut Txn, args: &Args) -> Reply {
    let (mut set, ttl) = match load(t, &args[1]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let added = args[2..].iter().filter(|m| set.insert(m.to_vec())).count();
    if added > 0 {
        store(t, &args[1], set, ttl);
    }
    Reply::Integer(added as i64)
}

pub(crate) fn srem(t: &mut Txn, args: &Args) -> Reply {
    let (mut set, ttl) = match load(t, &args[1]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let removed = args[2..]
        .iter()
        .filter(|m| set.remove(m.as_slice()))
        .count();
    if removed > 0 {
        store(t, &args[1], set, ttl);
    }
    Reply::Integer(removed as i64)
}

pub(crate) fn smembers(t: &mut Txn, args: &Args) -> Reply {
    match load(t, &args[1]) {
        Ok((s, _)) => Reply::Set(s.into_iter().map(Reply::Bulk).collect()),
        Err(e) => e,
    }
}

pub(crate) fn sismember(t: &mut Txn, args: &Args) -> Reply {
    match load(t, &args[1]) {
        Ok((s, _)) => Reply::Integer(i64::from(s.contains(&args[2]))),
        Err(e) => e,
    }
}

pub(crate) fn scard(t: &mut Txn, args: &Args) -> Reply {
    match load(t, &args[1]) {
        Ok((s, _)) => Reply::Integer(s.len() as i64),
        Err(e) => e,
    }
}
