//! Semantics of every keyed command, checked against what Redis answers.

use super::*;
use crate::value::{Entry, Value};
use std::collections::HashMap;

const NOW: u64 = 1_700_000_000_000;

/// A store that applies mutations, to run command sequences.
#[derive(Default)]
struct Db {
    map: HashMap<Vec<u8>, Entry>,
    now: u64,
    last_mutations: Vec<Mutation>,
}

impl Db {
    fn new() -> Self {
        Db {
            now: NOW,
            ..Default::default()
        }
    }

    fn run(&mut self, line: &str) -> Reply {
        let args: Vec<Vec<u8>> = line
            .split_whitespace()
            .map(|w| w.as_bytes().to_vec())
            .collect();
        self.run_args(&args)
    }

    fn run_args(&mut self, args: &[Vec<u8>]) -> Reply {
        let out = execute(args, &mut self.map, self.now);
        for m in &out.mutations {
            match m {
                Mutation::Put { key, entry } => {
                    self.map.insert(key.clone(), entry.clone());
                }
                Mutation::Delete { key } => {
                    self.map.remove(key);
                }
            }
        }
        self.last_mutations = out.mutations;
        out.reply
    }

    fn advance(&mut self, ms: u64) {
        self.now += ms;
    }
}

fn ok() -> Reply {
    Reply::Simple("OK".into())
}
fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}
fn int(n: i64) -> Reply {
    Reply::Integer(n)
}
fn e(s: &str) -> Reply {
    Reply::Error(s.into())
}

#[test]
fn every_keyed_command_is_implemented() {
    for spec in spec::COMMANDS.iter().filter(|s| s.kind == Kind::Keyed) {
        let argc = spec.arity.unsigned_abs() as usize;
        let mut args = vec![spec.name.as_bytes().to_vec()];
        args.extend((1..argc).map(|i| format!("{i}").into_bytes()));
        let mut map = HashMap::new();
        let reply = execute(&args, &mut map, NOW).reply;
        if let Reply::Error(text) = &reply {
            assert!(!text.contains("no implementation"), "{}: {text}", spec.name);
        }
    }
}

#[test]
fn unknown_command_and_arity() {
    let mut db = Db::new();
    assert_eq!(
        db.run("FOO a b"),
        e("ERR unknown command 'FOO', with args beginning with: 'a' 'b' ")
    );
    assert_eq!(
        db.run("GET"),
        e("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        db.run("GET a b"),
        e("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        db.run("MSET a 1 b"),
        e("ERR wrong number of arguments for 'mset' command")
    );
    assert_eq!(
        db.run("HSET h f"),
        e("ERR wrong number of arguments for 'hset' command")
    );
    assert_eq!(
        db.run("HSET h f v g"),
        e("ERR wrong number of arguments for 'hset' command")
    );
}

#[test]
fn set_and_get() {
    let mut db = Db::new();
    assert_eq!(db.run("GET k"), Reply::Nil);
    assert_eq!(db.run("SET k v"), ok());
    assert_eq!(db.run("GET k"), bulk("v"));
    assert_eq!(db.run("SET k v2 NX"), Reply::Nil);
    assert_eq!(db.run("SET k2 v XX"), Reply::Nil);
    assert_eq!(db.run("SET k v3 XX"), ok());
    assert_eq!(db.run("SET k v4 GET"), bulk("v3"));
    assert_eq!(db.run("SET new v GET"), Reply::Nil);
    assert_eq!(db.run("GET new"), bulk("v"));
    // NX with GET: answers the old value and does not set.
    assert_eq!(db.run("SET k v5 NX GET"), bulk("v4"));
    assert_eq!(db.run("GET k"), bulk("v4"));
}

#[test]
fn set_option_errors() {
    let mut db = Db::new();
    assert_eq!(db.run("SET k v NX XX"), e("ERR syntax error"));
    assert_eq!(db.run("SET k v EX 10 PX 100"), e("ERR syntax error"));
    assert_eq!(db.run("SET k v EX"), e("ERR syntax error"));
    assert_eq!(db.run("SET k v KEEPTTL EX 10"), e("ERR syntax error"));
    assert_eq!(db.run("SET k v EX 10 KEEPTTL"), e("ERR syntax error"));
    assert_eq!(db.run("SET k v FOO"), e("ERR syntax error"));
    assert_eq!(
        db.run("SET k v EX abc"),
        e("ERR value is not an integer or out of range")
    );
    assert_eq!(
        db.run("SET k v EX 0"),
        e("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        db.run("SET k v PX -5"),
        e("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        db.run("SET k v EX 9223372036854775807"),
        e("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        db.run("SET k v PX 9223372036854775807"),
        e("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        db.run("SETEX k 0 v"),
        e("ERR invalid expire time in 'setex' command")
    );
    assert_eq!(
        db.run("PSETEX k -1 v"),
        e("ERR invalid expire time in 'psetex' command")
    );
    // Repeating the same option is allowed, the last one wins.
    assert_eq!(db.run("SET k v EX 10 EX 20"), ok());
    assert_eq!(db.run("TTL k"), int(20));
    assert!(db.map.contains_key(b"k".as_slice()));
}

#[test]
fn set_expiry_forms() {
    let mut db = Db::new();
    assert_eq!(db.run("SET a v EX 10"), ok());
    assert_eq!(db.run("PTTL a"), int(10_000));
    assert_eq!(db.run("SET b v PX 1500"), ok());
    assert_eq!(db.run("TTL b"), int(2)); // rounded like Redis: (1500 + 500) / 1000
    assert_eq!(db.run(&format!("SET c v EXAT {}", NOW / 1000 + 100)), ok());
    assert_eq!(db.run("TTL c"), int(100));
    assert_eq!(db.run(&format!("SET d v PXAT {}", NOW + 2500)), ok());
    assert_eq!(db.run("PTTL d"), int(2500));
    // An absolute time in the past stores nothing.
    assert_eq!(db.run(&format!("SET e v PXAT {}", NOW - 1)), ok());
    assert_eq!(db.run("GET e"), Reply::Nil);
    assert_eq!(db.run("SETEX f 5 v"), ok());
    assert_eq!(db.run("TTL f"), int(5));
    assert_eq!(db.run("PSETEX g 700 v"), ok());
    assert_eq!(db.run("PTTL g"), int(700));
}

#[test]
fn plain_set_clears_ttl_keepttl_keeps_it() {
    let mut db = Db::new();
    db.run("SET k v EX 100");
    assert_eq!(db.run("SET k v2 KEEPTTL"), ok());
    assert_eq!(db.run("TTL k"), int(100));
    assert_eq!(db.run("SET k v3"), ok());
    assert_eq!(db.run("TTL k"), int(-1));
    assert_eq!(db.run("SET nokey v KEEPTTL"), ok());
    assert_eq!(db.run("TTL nokey"), int(-1));
}

#[test]
fn set_get_on_hash_is_wrongtype_and_does_not_write() {
    let mut db = Db::new();
    db.run("HSET h f v");
    assert_eq!(
        db.run("SET h v GET"),
        e("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
    assert_eq!(db.run("TYPE h"), Reply::Simple("hash".into()));
    // Without GET, SET replaces a value of any type.
    assert_eq!(db.run("SET h v"), ok());
    assert_eq!(db.run("TYPE h"), Reply::Simple("string".into()));
}

#[test]
fn wrongtype_everywhere() {
    let mut db = Db::new();
    db.run("SET s v");
    db.run("HSET h f v");
    let wt = e("WRONGTYPE Operation against a key holding the wrong kind of value");
    for cmd in [
        "HGET s f",
        "HSET s f v",
        "HGETALL s",
        "HDEL s f",
        "HLEN s",
        "HINCRBY s f 1",
        "SADD s m",
        "SMEMBERS s",
        "SISMEMBER s m",
        "GET h",
        "GETDEL h",
        "GETEX h",
        "INCR h",
        "APPEND h x",
    ] {
        assert_eq!(db.run(cmd), wt, "{cmd}");
    }
    // MGET answers nil for other types.
    assert_eq!(
        db.run("MGET s h"),
        Reply::Array(vec![bulk("v"), Reply::Nil])
    );
}

#[test]
fn lazy_expiry_deletes_on_access() {
    let mut db = Db::new();
    db.run("SET k v PX 100");
    db.advance(100);
    assert!(db.map.contains_key(b"k".as_slice()));
    assert_eq!(db.run("GET k"), Reply::Nil);
    assert_eq!(
        db.last_mutations,
        vec![Mutation::Delete { key: b"k".to_vec() }]
    );
    assert!(!db.map.contains_key(b"k".as_slice()));
    assert_eq!(db.run("TTL k"), int(-2));
}

#[test]
fn expire_family() {
    let mut db = Db::new();
    assert_eq!(db.run("EXPIRE missing 10"), int(0));
    db.run("SET k v");
    assert_eq!(db.run("EXPIRE k 10"), int(1));
    assert_eq!(db.run("TTL k"), int(10));
    assert_eq!(db.run("PEXPIRE k 5000"), int(1));
    assert_eq!(db.run("PTTL k"), int(5000));
    assert_eq!(db.run(&format!("EXPIREAT k {}", NOW / 1000 + 50)), int(1));
    assert_eq!(db.run("TTL k"), int(50));
    assert_eq!(db.run(&format!("PEXPIREAT k {}", NOW + 1234)), int(1));
    assert_eq!(db.run("PTTL k"), int(1234));
    assert_eq!(db.run("PEXPIRETIME k"), int((NOW + 1234) as i64));
    assert_eq!(db.run("EXPIRETIME k"), int(((NOW + 1234) / 1000) as i64));
    assert_eq!(
        db.run("EXPIRE k abc"),
        e("ERR value is not an integer or out of range")
    );
    assert_eq!(
        db.run("EXPIRE k 9223372036854775807"),
        e("ERR invalid expire time in 'expire' command")
    );
    assert_eq!(
        db.run("PEXPIRE k 9223372036854775807"),
        e("ERR invalid expire time in 'pexpire' command")
    );
}

#[test]
fn expire_zero_or_negative_deletes() {
    let mut db = Db::new();
    db.run("SET a v");
    assert_eq!(db.run("EXPIRE a 0"), int(1));
    assert_eq!(db.run("EXISTS a"), int(0));
    assert_eq!(db.last_mutations, vec![]);
    db.run("SET b v");
    assert_eq!(db.run("EXPIRE b -10"), int(1));
    assert_eq!(db.run("GET b"), Reply::Nil);
    db.run("SET c v");
    assert_eq!(db.run("PEXPIREAT c 1"), int(1));
    assert_eq!(db.run("TTL c"), int(-2));
    db.run("SET d v");
    db.run("EXPIRE d -1");
    assert!(!db.map.contains_key(b"d".as_slice()));
}

#[test]
fn expire_options() {
    let mut db = Db::new();
    db.run("SET k v");
    // No TTL: XX and GT fail, NX and LT succeed.
    assert_eq!(db.run("EXPIRE k 100 XX"), int(0));
    assert_eq!(db.run("EXPIRE k 100 GT"), int(0));
    assert_eq!(db.run("TTL k"), int(-1));
    assert_eq!(db.run("EXPIRE k 100 LT"), int(1));
    assert_eq!(db.run("TTL k"), int(100));
    assert_eq!(db.run("EXPIRE k 200 NX"), int(0));
    assert_eq!(db.run("EXPIRE k 200 XX"), int(1));
    assert_eq!(db.run("EXPIRE k 100 GT"), int(0));
    assert_eq!(db.run("EXPIRE k 300 GT"), int(1));
    assert_eq!(db.run("EXPIRE k 400 LT"), int(0));
    assert_eq!(db.run("EXPIRE k 50 LT"), int(1));
    assert_eq!(db.run("TTL k"), int(50));
    db.run("SET n v");
    assert_eq!(db.run("EXPIRE n 10 NX"), int(1));
    assert_eq!(
        db.run("EXPIRE k 10 NX XX"),
        e("ERR NX and XX, GT or LT options at the same time are not compatible")
    );
    assert_eq!(
        db.run("EXPIRE k 10 GT LT"),
        e("ERR GT and LT options at the same time are not compatible")
    );
    assert_eq!(db.run("EXPIRE k 10 FOO"), e("ERR Unsupported option FOO"));
}

#[test]
fn ttl_persist_touch_type() {
    let mut db = Db::new();
    assert_eq!(db.run("TTL k"), int(-2));
    assert_eq!(db.run("PTTL k"), int(-2));
    assert_eq!(db.run("PERSIST k"), int(0));
    db.run("SET k v");
    assert_eq!(db.run("TTL k"), int(-1));
    assert_eq!(db.run("PERSIST k"), int(0));
    db.run("EXPIRE k 10");
    assert_eq!(db.run("PERSIST k"), int(1));
    assert_eq!(db.run("TTL k"), int(-1));
    assert_eq!(db.run("TOUCH k k missing"), int(2));
    assert_eq!(db.run("EXISTS k missing k"), int(2));
    assert_eq!(db.run("TYPE k"), Reply::Simple("string".into()));
    assert_eq!(db.run("TYPE missing"), Reply::Simple("none".into()));
    db.run("SADD s a");
    assert_eq!(db.run("TYPE s"), Reply::Simple("set".into()));
}

#[test]
fn getex_getdel() {
    let mut db = Db::new();
    assert_eq!(db.run("GETEX missing EX 10"), Reply::Nil);
    assert_eq!(db.run("GETEX missing EX 0"), Reply::Nil);
    db.run("SET k v");
    assert_eq!(db.run("GETEX k"), bulk("v"));
    assert_eq!(db.run("GETEX k EX 10"), bulk("v"));
    assert_eq!(db.run("TTL k"), int(10));
    assert_eq!(db.run("GETEX k PX 500"), bulk("v"));
    assert_eq!(db.run("PTTL k"), int(500));
    assert_eq!(db.run("GETEX k PERSIST"), bulk("v"));
    assert_eq!(db.run("TTL k"), int(-1));
    assert_eq!(
        db.run("GETEX k EX 0"),
        e("ERR invalid expire time in 'getex' command")
    );
    assert_eq!(db.run("GETEX k PERSIST EX 10"), e("ERR syntax error"));
    assert_eq!(db.run("GETEX k KEEPTTL"), e("ERR syntax error"));
    assert_eq!(db.run("GETEX k NX"), e("ERR syntax error"));
    assert_eq!(db.run(&format!("GETEX k PXAT {}", NOW - 10)), bulk("v"));
    assert_eq!(db.run("EXISTS k"), int(0));
    db.run("SET d v EX 100");
    assert_eq!(db.run("GETDEL d"), bulk("v"));
    assert_eq!(db.run("GETDEL d"), Reply::Nil);
}

#[test]
fn mget_mset_del() {
    let mut db = Db::new();
    db.run("SET a old EX 100");
    assert_eq!(db.run("MSET a 1 b 2"), ok());
    assert_eq!(db.run("TTL a"), int(-1));
    assert_eq!(
        db.run("MGET a b c"),
        Reply::Array(vec![bulk("1"), bulk("2"), Reply::Nil])
    );
    assert_eq!(db.run("DEL a b c a"), int(2));
    db.run("SET x 1");
    assert_eq!(db.run("UNLINK x y"), int(1));
    db.run("MSET k 1 k 2");
    assert_eq!(db.run("GET k"), bulk("2"));
    assert_eq!(
        db.last_mutations.len(),
        0,
        "GET of a live key changes nothing"
    );
}

#[test]
fn many_keys_in_one_command_each_change_once() {
    // Past a few keys a command finds the keys it touched through an index: repeats
    // before and after that point still collapse into one change per key.
    let mut db = Db::new();
    let mut line = String::from("MSET");
    for round in 0..3 {
        for k in 0..12 {
            line.push_str(&format!(" k{k} r{round}"));
        }
    }
    assert_eq!(db.run(&line), ok());
    assert_eq!(db.last_mutations.len(), 12);
    assert_eq!(db.run("GET k0"), bulk("r2"));
    assert_eq!(db.run("GET k11"), bulk("r2"));
    let dels: String = (0..12).map(|k| format!(" k{k} k{k}")).collect();
    assert_eq!(db.run(&format!("DEL{dels}")), int(12));
    assert_eq!(db.last_mutations.len(), 12);
}

#[test]
fn rename() {
    let mut db = Db::new();
    assert_eq!(db.run("RENAME a b"), e("ERR no such key"));
    db.run("SET a v EX 100");
    db.run("SET b other");
    assert_eq!(db.run("RENAME a b"), ok());
    assert_eq!(db.run("GET b"), bulk("v"));
    assert_eq!(db.run("TTL b"), int(100));
    assert_eq!(db.run("EXISTS a"), int(0));
    assert_eq!(db.run("RENAME b b"), ok());
    assert_eq!(db.run("GET b"), bulk("v"));
    db.run("SET c x");
    assert_eq!(db.run("RENAMENX b c"), int(0));
    assert_eq!(db.run("RENAMENX b d"), int(1));
}

#[test]
fn hashes() {
    let mut db = Db::new();
    assert_eq!(db.run("HSET h a 1 b 2"), int(2));
    assert_eq!(db.run("HSET h a 3 c 4"), int(1));
    assert_eq!(db.run("HMSET h d 5"), ok());
    assert_eq!(db.run("HGET h a"), bulk("3"));
    assert_eq!(db.run("HGET h zz"), Reply::Nil);
    assert_eq!(db.run("HGET nohash a"), Reply::Nil);
    assert_eq!(
        db.run("HMGET h a zz"),
        Reply::Array(vec![bulk("3"), Reply::Nil])
    );
    assert_eq!(db.run("HMGET nohash a"), Reply::Array(vec![Reply::Nil]));
    assert_eq!(db.run("HLEN h"), int(4));
    assert_eq!(db.run("HEXISTS h a"), int(1));
    assert_eq!(db.run("HEXISTS h zz"), int(0));
    assert_eq!(db.run("HDEL h a zz"), int(1));
    assert_eq!(
        db.run("HGETALL h"),
        Reply::Map(vec![
            (bulk("b"), bulk("2")),
            (bulk("c"), bulk("4")),
            (bulk("d"), bulk("5"))
        ])
    );
    assert_eq!(db.run("HGETALL nohash"), Reply::Map(vec![]));
    assert_eq!(db.run("HDEL h b c d"), int(3));
    assert_eq!(db.run("EXISTS h"), int(0), "an emptied hash is deleted");
}

#[test]
fn hincrby() {
    let mut db = Db::new();
    assert_eq!(db.run("HINCRBY h n 5"), int(5));
    assert_eq!(db.run("HINCRBY h n -7"), int(-2));
    assert_eq!(
        db.run("HINCRBY h n x"),
        e("ERR value is not an integer or out of range")
    );
    db.run("HSET h s abc");
    assert_eq!(
        db.run("HINCRBY h s 1"),
        e("ERR hash value is not an integer")
    );
    db.run("HSET h big 9223372036854775806");
    assert_eq!(db.run("HINCRBY h big 1"), int(i64::MAX));
    assert_eq!(
        db.run("HINCRBY h big 1"),
        e("ERR increment or decrement would overflow")
    );
}

#[test]
fn hash_keeps_ttl_on_update() {
    let mut db = Db::new();
    db.run("HSET h a 1");
    db.run("EXPIRE h 100");
    db.run("HSET h b 2");
    assert_eq!(db.run("TTL h"), int(100));
}

#[test]
fn sets() {
    let mut db = Db::new();
    assert_eq!(db.run("SADD s a b a"), int(2));
    assert_eq!(db.run("SADD s b c"), int(1));
    assert_eq!(db.run("SISMEMBER s a"), int(1));
    assert_eq!(db.run("SISMEMBER s z"), int(0));
    assert_eq!(db.run("SCARD s"), int(3));
    assert_eq!(
        db.run("SMEMBERS s"),
        Reply::Set(vec![bulk("a"), bulk("b"), bulk("c")])
    );
    assert_eq!(db.run("SREM s a z"), int(1));
    assert_eq!(db.run("SREM s b c"), int(2));
    assert_eq!(db.run("EXISTS s"), int(0));
    assert_eq!(db.run("SMEMBERS s"), Reply::Set(vec![]));
}

#[test]
fn counters() {
    let mut db = Db::new();
    assert_eq!(db.run("INCR n"), int(1));
    assert_eq!(db.run("INCRBY n 10"), int(11));
    assert_eq!(db.run("DECR n"), int(10));
    assert_eq!(db.run("DECRBY n 3"), int(7));
    db.run("SET s abc");
    assert_eq!(
        db.run("INCR s"),
        e("ERR value is not an integer or out of range")
    );
    db.run("SET m 9223372036854775807");
    assert_eq!(
        db.run("INCR m"),
        e("ERR increment or decrement would overflow")
    );
    assert_eq!(
        db.run("DECRBY n -9223372036854775808"),
        e("ERR decrement would overflow")
    );
    assert_eq!(db.run("APPEND s de"), int(5));
    assert_eq!(db.run("STRLEN s"), int(5));
    assert_eq!(db.run("SETNX s x"), int(0));
    assert_eq!(db.run("SETNX t x"), int(1));
    assert_eq!(db.run("GETSET t y"), bulk("x"));
}

#[test]
fn mutations_carry_absolute_state() {
    let mut db = Db::new();
    db.run("SET k v EX 10");
    assert_eq!(
        db.last_mutations,
        vec![Mutation::Put {
            key: b"k".to_vec(),
            entry: Entry {
                value: Value::Str(b"v".to_vec()),
                expires_at_ms: Some(NOW + 10_000)
            }
        }]
    );
    db.run("RENAME k j");
    assert_eq!(db.last_mutations.len(), 2);
    assert!(matches!(&db.last_mutations[0], Mutation::Delete { key } if key == b"k"));
    assert!(
        matches!(&db.last_mutations[1], Mutation::Put { key, entry } if key == b"j" && entry.expires_at_ms == Some(NOW + 10_000))
    );
    db.run("DEL nothing");
    assert!(db.last_mutations.is_empty());
}
