//! String commands: GET, SET and its variants, MGET/MSET, counters.

use super::args::{eq_ignore_case, parse_i64};
use super::errors::{err, invalid_expire, wrong_arity, NOT_INTEGER, OVERFLOW, SYNTAX, WRONGTYPE};
use super::txn::{Txn, Typed};
use crate::reply::Reply;
use crate::value::{Entry, Value};

type Args = [Vec<u8>];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Seconds,
    Millis,
}

/// An expiry argument as given: `EX 10` is (Seconds, relative), `PXAT 17e11` (Millis, absolute).
#[derive(Clone, Copy)]
struct ExpireArg<'a> {
    raw: &'a [u8],
    unit: Unit,
    absolute: bool,
}

/// Resolves an expiry argument of SET/GETEX/SETEX/PSETEX to absolute unix milliseconds,
/// with Redis's checks (positive, no overflow).
fn resolve_expire(arg: ExpireArg, now: u64, command: &str) -> Result<u64, Reply> {
    let value = parse_i64(arg.raw).ok_or_else(|| err(NOT_INTEGER))?;
    if value <= 0 || (arg.unit == Unit::Seconds && value > i64::MAX / 1000) {
        return Err(invalid_expire(command));
    }
    let mut ms = if arg.unit == Unit::Seconds {
        value * 1000
    } else {
        value
    };
    if !arg.absolute {
        ms = ms
            .checked_add(now as i64)
            .ok_or_else(|| invalid_expire(command))?;
    }
    Ok(ms as u64)
}

#[derive(Default)]
struct SetOptions<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    expire: Option<ExpireArg<'a>>,
}

/// Parses SET's options (from index 3) or GETEX's (from index 2), with the same
/// exclusions as Redis's parseExtendedStringArgumentsOrReply.
fn parse_set_options(args: &Args, start: usize, is_set: bool) -> Result<SetOptions<'_>, Reply> {
    let mut o = SetOptions::default();
    let mut j = start;
    while j < args.len() {
        let opt = &args[j];
        let next = args.get(j + 1);
        let has_expire = |o: &SetOptions, except: (Unit, bool)| {
            o.expire.is_some_and(|e| (e.unit, e.absolute) != except)
        };
        if is_set && eq_ignore_case(opt, "NX") && !o.xx {
            o.nx = true;
        } else if is_set && eq_ignore_case(opt, "XX") && !o.nx {
            o.xx = true;
        } else if is_set && eq_ignore_case(opt, "GET") {
            o.get = true;
        } else if is_set && eq_ignore_case(opt, "KEEPTTL") && o.expire.is_none() && !o.persist {
            o.keepttl = true;
        } else if !is_set && eq_ignore_case(opt, "PERSIST") && o.expire.is_none() && !o.keepttl {
            o.persist = true;
        } else if let (Some((unit, absolute)), Some(next)) = (expire_option(opt), next) {
            if o.keepttl || o.persist || has_expire(&o, (unit, absolute)) {
                return Err(err(SYNTAX));
            }
            o.expire = Some(ExpireArg {
                raw: next,
                unit,
                absolute,
            });
            j += 1;
        } else {
            return Err(err(SYNTAX));
        }
        j += 1;
    }
    Ok(o)
}

fn expire_option(opt: &[u8]) -> Option<(Unit, bool)> {
    if eq_ignore_case(opt, "EX") {
        Some((Unit::Seconds, false))
    } else if eq_ignore_case(opt, "PX") {
        Some((Unit::Millis, false))
    } else if eq_ignore_case(opt, "EXAT") {
        Some((Unit::Seconds, true))
    } else if eq_ignore_case(opt, "PXAT") {
        Some((Unit::Millis, true))
    } else {
        None
    }
}

fn str_entry(value: Vec<u8>, expires_at_ms: Option<u64>) -> Entry {
    Entry {
        value: Value::Str(value),
        expires_at_ms,
    }
}

pub(crate) fn get(t: &mut Txn, args: &Args) -> Reply {
    match t.string(&args[1]) {
        Typed::Missing => Reply::Nil,
        Typed::Wrong => err(WRONGTYPE),
        Typed::Found(v, _) => Reply::Bulk(v),
    }
}

pub(crate) fn set(t: &mut Txn, args: &Args) -> Reply {
    let opts = match parse_set_options(args, 3, true) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let expires_at = match opts.expire.map(|e| resolve_expire(e, t.now, "set")) {
        Some(Ok(at)) => Some(at),
        Some(Err(e)) => return e,
        None => None,
    };
    let key = &args[1];
    // A plain SET replaces whatever is there: copying the old value out only to drop
    // it was a third of a session write's copying (the value is 1 KiB).
    let current = if opts.get || opts.nx || opts.xx || opts.keepttl {
        t.get(key)
    } else {
        None
    };
    let old_reply = if opts.get {
        match &current {
            None => Some(Reply::Nil),
            Some(Entry {
                value: Value::Str(v),
                ..
            }) => Some(Reply::Bulk(v.clone())),
            Some(_) => return err(WRONGTYPE),
        }
    } else {
        None
    };
    let found = current.is_some();
    if (opts.nx && found) || (opts.xx && !found) {
        return old_reply.unwrap_or(Reply::Nil);
    }
    let ttl = match expires_at {
        Some(at) => Some(at),
        None if opts.keepttl => current.and_then(|e| e.expires_at_ms),
        None => None,
    };
    t.put(key, str_entry(args[2].clone(), ttl));
    old_reply.unwrap_or_else(|| Reply::Simple("OK".into()))
}

/// SETEX and PSETEX: `key ttl value`.
pub(crate) fn setex(t: &mut Txn, args: &Args, millis: bool) -> Reply {
    let (unit, name) = if millis {
        (Unit::Millis, "psetex")
    } else {
        (Unit::Seconds, "setex")
    };
    let arg = ExpireArg {
        raw: &args[2],
        unit,
        absolute: false,
    };
    match resolve_expire(arg, t.now, name) {
        Ok(at) => {
            t.put(&args[1], str_entry(args[3].clone(), Some(at)));
            Reply::Simple("OK".into())
        }
        Err(e) => e,
    }
}

pub(crate) fn setnx(t: &mut Txn, args: &Args) -> Reply {
    if t.exists(&args[1]) {
        return Reply::Integer(0);
    }
    t.put(&args[1], str_entry(args[2].clone(), None));
    Reply::Integer(1)
}

pub(crate) fn getset(t: &mut Txn, args: &Args) -> Reply {
    let old = match t.string(&args[1]) {
        Typed::Missing => Reply::Nil,
        Typed::Wrong => return err(WRONGTYPE),
        Typed::Found(v, _) => Reply::Bulk(v),
    };
    t.put(&args[1], str_entry(args[2].clone(), None));
    old
}

pub(crate) fn getex(t: &mut Txn, args: &Args) -> Reply {
    let opts = match parse_set_options(args, 2, false) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let key = &args[1];
    let (value, ttl) = match t.string(key) {
        Typed::Missing => return Reply::Nil,
        Typed::Wrong => return err(WRONGTYPE),
        Typed::Found(v, ttl) => (v, ttl),
    };
    let new_ttl = match opts.expire.map(|e| resolve_expire(e, t.now, "getex")) {
        Some(Ok(at)) => Some(at),
        Some(Err(e)) => return e,
        None if opts.persist => None,
        None => return Reply::Bulk(value),
    };
    if new_ttl != ttl {
        // An absolute time in the past deletes the key (Txn::put drops expired entries).
        t.put(key, str_entry(value.clone(), new_ttl));
    }
    Reply::Bulk(value)
}

pub(crate) fn getdel(t: &mut Txn, args: &Args) -> Reply {
    match t.string(&args[1]) {
        Typed::Missing => Reply::Nil,
        Typed::Wrong => err(WRONGTYPE),
        Typed::Found(v, _) => {
            t.delete(&args[1]);
            Reply::Bulk(v)
        }
    }
}

pub(crate) fn mget(t: &mut Txn, args: &Args) -> Reply {
    let values = args[1..]
        .iter()
        .map(|key| match t.string(key) {
            Typed::Found(v, _) => Reply::Bulk(v),
            // MGET answers nil for keys of other types, no WRONGTYPE.
            Typed::Missing | Typed::Wrong => Reply::Nil,
        })
        .collect();
    Reply::Array(values)
}

pub(crate) fn mset(t: &mut Txn, args: &Args) -> Reply {
    if args.len().is_multiple_of(2) {
        return wrong_arity("mset");
    }
    for pair in args[1..].chunks(2) {
        t.put(&pair[0], str_entry(pair[1].clone(), None));
    }
    Reply::Simple("OK".into())
}

pub(crate) fn incr_by(t: &mut Txn, key: &[u8], delta: i64) -> Reply {
    let (current, ttl) = match t.string(key) {
        Typed::Missing => (0, None),
        Typed::Wrong => return err(WRONGTYPE),
        Typed::Found(v, ttl) => match parse_i64(&v) {
            Some(n) => (n, ttl),
            None => return err(NOT_INTEGER),
        },
    };
    let Some(next) = current.checked_add(delta) else {
        return err(OVERFLOW);
    };
    t.put(key, str_entry(next.to_string().into_bytes(), ttl));
    Reply::Integer(next)
}

/// INCRBY/DECRBY: the increment argument must be an integer; DECRBY negates it.
pub(crate) fn incr_by_arg(t: &mut Txn, args: &Args, negate: bool) -> Reply {
    let Some(delta) = parse_i64(&args[2]) else {
        return err(NOT_INTEGER);
    };
    let delta = if negate {
        match delta.checked_neg() {
            Some(d) => d,
            None => return Reply::Error("ERR decrement would overflow".into()),
        }
    } else {
        delta
    };
    incr_by(t, &args[1], delta)
}

pub(crate) fn append(t: &mut Txn, args: &Args) -> Reply {
    let (mut value, ttl) = match t.string(&args[1]) {
        Typed::Missing => (Vec::new(), None),
        Typed::Wrong => return err(WRONGTYPE),
        Typed::Found(v, ttl) => (v, ttl),
    };
    value.extend_from_slice(&args[2]);
    let len = value.len() as i64;
    t.put(&args[1], str_entry(value, ttl));
    Reply::Integer(len)
}

pub(crate) fn strlen(t: &mut Txn, args: &Args) -> Reply {
    match t.string(&args[1]) {
        Typed::Missing => Reply::Integer(0),
        Typed::Wrong => err(WRONGTYPE),
        Typed::Found(v, _) => Reply::Integer(v.len() as i64),
    }
}
