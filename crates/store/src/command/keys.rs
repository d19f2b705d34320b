//! Generic key commands: existence, deletion, expiry, type, rename.

use super::args::{eq_ignore_case, parse_i64};
use super::errors::{err, invalid_expire, NOT_INTEGER, NO_SUCH_KEY};
use super::txn::Txn;
use crate::reply::Reply;
use crate::value::Value;

type Args = [Vec<u8>];

pub(crate) fn del(t: &mut Txn, args: &Args) -> Reply {
    let mut deleted = 0;
    for key in &args[1..] {
        if t.exists(key) {
            t.delete(key);
            deleted += 1;
        }
    }
    Reply::Integer(deleted)
}

/// EXISTS counts a key once per mention; TOUCH answers the same count.
pub(crate) fn exists(t: &mut Txn, args: &Args) -> Reply {
    let count = args[1..].iter().filter(|key| t.exists(key)).count();
    Reply::Integer(count as i64)
}

#[derive(Default)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

fn parse_expire_flags(args: &Args) -> Result<ExpireFlags, Reply> {
    let mut f = ExpireFlags::default();
    for opt in &args[3..] {
        if eq_ignore_case(opt, "NX") {
            f.nx = true;
        } else if eq_ignore_case(opt, "XX") {
            f.xx = true;
        } else if eq_ignore_case(opt, "GT") {
            f.gt = true;
        } else if eq_ignore_case(opt, "LT") {
            f.lt = true;
        } else {
            return Err(Reply::Error(super::errors::sanitize(&format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(opt)
            ))));
        }
    }
    if f.nx && (f.xx || f.gt || f.lt) {
        return Err(err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if f.gt && f.lt {
        return Err(err(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(f)
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT with NX/XX/GT/LT. A time at or before now
/// deletes the key, as Redis does.
pub(crate) fn expire(t: &mut Txn, args: &Args, name: &str, millis: bool, absolute: bool) -> Reply {
    let flags = match parse_expire_flags(args) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let Some(value) = parse_i64(&args[2]) else {
        return err(NOT_INTEGER);
    };
    let when = if millis {
        Some(value)
    } else {
        value.checked_mul(1000)
    };
    let base = if absolute { 0 } else { t.now as i64 };
    let Some(when) = when.and_then(|w| w.checked_add(base)) else {
        return invalid_expire(name);
    };
    let key = &args[1];
    let Some(mut entry) = t.get(key) else {
        return Reply::Integer(0);
    };
    let current = entry.expires_at_ms.map(|at| at as i64);
    if flags.nx && current.is_some() {
        return Reply::Integer(0);
    }
    if flags.xx && current.is_none() {
        return Reply::Integer(0);
    }
    // No TTL counts as an infinite one: GT never beats it, LT always does.
    if flags.gt && current.is_none_or(|c| when <= c) {
        return Reply::Integer(0);
    }
    if flags.lt && current.is_some_and(|c| when >= c) {
        return Reply::Integer(0);
    }
    if when <= t.now as i64 {
        t.delete(key);
    } else {
        entry.expires_at_ms = Some(when as u64);
        t.put(key, entry);
    }
    Reply::Integer(1)
}

/// TTL and PTTL: -2 for a missing key, -1 for no expiry.
pub(crate) fn ttl(t: &mut Txn, args: &Args, millis: bool) -> Reply {
    let Some(entry) = t.get(&args[1]) else {
        return Reply::Integer(-2);
    };
    let Some(at) = entry.expires_at_ms else {
        return Reply::Integer(-1);
    };
    let left = at.saturating_sub(t.now) as i64;
    Reply::Integer(if millis { left } else { (left + 500) / 1000 })
}

/// EXPIRETIME and PEXPIRETIME: the absolute expiry, -2 / -1 as TTL.
pub(crate) fn expiretime(t: &mut Txn, args: &Args, millis: bool) -> Reply {
    let Some(entry) = t.get(&args[1]) else {
        return Reply::Integer(-2);
    };
    match entry.expires_at_ms {
        None => Reply::Integer(-1),
        Some(at) if millis => Reply::Integer(at as i64),
        Some(at) => Reply::Integer((at / 1000) as i64),
    }
}

pub(crate) fn persist(t: &mut Txn, args: &Args) -> Reply {
    match t.get(&args[1]) {
        Some(mut entry) if entry.expires_at_ms.is_some() => {
            entry.expires_at_ms = None;
            t.put(&args[1], entry);
            Reply::Integer(1)
        }
        _ => Reply::Integer(0),
    }
}

pub(crate) fn type_of(t: &mut Txn, args: &Args) -> Reply {
    let name = match t.get(&args[1]).map(|e| e.value) {
        None => "none",
        Some(Value::Str(_)) => "string",
        Some(Value::Hash(_)) => "hash",
        Some(Value::Set(_)) => "set",
    };
    Reply::Simple(name.into())
}

/// RENAME and RENAMENX; the TTL moves with the value.
pub(crate) fn rename(t: &mut Txn, args: &Args, nx: bool) -> Reply {
    let (src, dst) = (&args[1], &args[2]);
    let Some(entry) = t.get(src) else {
        return err(NO_SUCH_KEY);
    };
    if src == dst {
        return if nx {
            Reply::Integer(0)
        } else {
            Reply::Simple("OK".into())
        };
    }
    if nx && t.exists(dst) {
        return Reply::Integer(0);
    }
    t.delete(src);
    t.put(dst, entry);
    if nx {
        Reply::Integer(1)
    } else {
        Reply::Simple("OK".into())
    }
}
