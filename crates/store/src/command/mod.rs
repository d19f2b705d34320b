//! Commands: the table of what exists (`spec`) and the semantics of every keyed command
//! (`execute`), as pure functions of the keys' stored state and the time.
//!
//! `execute` never writes: it returns the reply and the resulting state of each key it
//! changed (`Mutation`s), which the caller applies locally and ships to replicas.

mod args;
pub mod errors;
mod hashes;
mod keys;
pub mod multikey;
pub mod scan;
mod sets;
pub mod spec;
mod strings;
mod txn;

pub use args::parse_i64;
pub use spec::{spec, CommandSpec, Kind, Merge};
pub use txn::KeyView;

use crate::reply::Reply;
use crate::value::Mutation;
use txn::Txn;

/// What a keyed command did: the reply for the client and the keys' new states.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub reply: Reply,
    pub mutations: Vec<Mutation>,
}

impl Outcome {
    fn reply_only(reply: Reply) -> Self {
        Outcome {
            reply,
            mutations: Vec::new(),
        }
    }
}

/// Executes a keyed command against `view` at `now_ms` (unix milliseconds).
///
/// Unknown commands, wrong arities and non-keyed commands get Redis's error replies.
pub fn execute(args: &[Vec<u8>], view: &mut dyn KeyView, now_ms: u64) -> Outcome {
    let Some(name) = args.first() else {
        return Outcome::reply_only(errors::err("ERR empty command"));
    };
    let Some(spec) = spec::spec(name) else {
        return Outcome::reply_only(errors::unknown_command(args));
    };
    if !spec.arity_ok(args.len()) {
        return Outcome::reply_only(errors::wrong_arity(spec.name));
    }
    if spec.kind != Kind::Keyed {
        return Outcome::reply_only(errors::err(&format!(
            "ERR '{}' is not a keyed command",
            spec.name
        )));
    }
    let mut t = Txn::new(view, now_ms);
    let reply = dispatch(spec.name, args, &mut t);
    Outcome {
        reply,
        mutations: t.into_mutations(),
    }
}

fn dispatch(name: &str, a: &[Vec<u8>], t: &mut Txn) -> Reply {
    match name {
        "get" => strings::get(t, a),
        "set" => strings::set(t, a),
        "setex" => strings::setex(t, a, false),
        "psetex" => strings::setex(t, a, true),
        "setnx" => strings::setnx(t, a),
        "getset" => strings::getset(t, a),
        "getex" => strings::getex(t, a),
        "getdel" => strings::getdel(t, a),
        "mget" => strings::mget(t, a),
        "mset" => strings::mset(t, a),
        "incr" => strings::incr_by(t, &a[1], 1),
        "decr" => strings::incr_by(t, &a[1], -1),
        "incrby" => strings::incr_by_arg(t, a, false),
        "decrby" => strings::incr_by_arg(t, a, true),
        "append" => strings::append(t, a),
        "strlen" => strings::strlen(t, a),
        "del" | "unlink" => keys::del(t, a),
        "exists" | "touch" => keys::exists(t, a),
        "expire" => keys::expire(t, a, "expire", false, false),
        "pexpire" => keys::expire(t, a, "pexpire", true, false),
        "expireat" => keys::expire(t, a, "expireat", false, true),
        "pexpireat" => keys::expire(t, a, "pexpireat", true, true),
        "ttl" => keys::ttl(t, a, false),
        "pttl" => keys::ttl(t, a, true),
        "expiretime" => keys::expiretime(t, a, false),
        "pexpiretime" => keys::expiretime(t, a, true),
        "persist" => keys::persist(t, a),
        "type" => keys::type_of(t, a),
        "rename" => keys::rename(t, a, false),
        "renamenx" => keys::rename(t, a, true),
        "hset" => hashes::hset(t, a, "hset"),
        "hmset" => hashes::hset(t, a, "hmset"),
        "hsetnx" => hashes::hsetnx(t, a),
        "hget" => hashes::hget(t, a),
        "hmget" => hashes::hmget(t, a),
        "hgetall" => hashes::hgetall(t, a),
        "hkeys" => hashes::hkeys(t, a, false),
        "hvals" => hashes::hkeys(t, a, true),
        "hdel" => hashes::hdel(t, a),
        "hexists" => hashes::hexists(t, a),
        "hlen" => hashes::hlen(t, a),
        "hstrlen" => hashes::hstrlen(t, a),
        "hincrby" => hashes::hincrby(t, a),
        "sadd" => sets::sadd(t, a),
        "srem" => sets::srem(t, a),
        "smembers" => sets::smembers(t, a),
        "sismember" => sets::sismember(t, a),
        "scard" => sets::scard(t, a),
        other => errors::err(&format!("ERR '{other}' has no implementation")),
    }
}

#[cfg(test)]
mod tests;
