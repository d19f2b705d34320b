//! The command table: arity, flags and key positions, as Redis's COMMAND reports them.
//!
//! The router reads key positions from here to find a command's partition and to split
//! multi-key commands; the connection reads arity and kind to decide who executes it.

/// Who executes a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Connection state (PING, AUTH, HELLO, CLIENT, ...): the connection answers itself.
    Connection,
    /// Server-wide introspection (INFO, COMMAND, CONFIG): the connection answers itself.
    Server,
    /// Every key of the node (DBSIZE, SCAN, KEYS): the backend answers, fanning out.
    Keyspace,
    /// Commands on named keys: the backend routes them by key.
    Keyed,
}

/// How the replies of a multi-key command split by partition are put back together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Single key, or keys that must share a partition (RENAME).
    None,
    /// One reply element per key, in key order (MGET).
    PerKey,
    /// Integer replies summed (DEL, UNLINK, EXISTS, TOUCH).
    Sum,
    /// `+OK` once every part answered `+OK` (MSET).
    AllOk,
}

pub const WRITE: u32 = 1;
pub const READONLY: u32 = 1 << 1;
pub const FAST: u32 = 1 << 2;
pub const DENYOOM: u32 = 1 << 3;
/// Allowed before AUTH.
pub const NO_AUTH: u32 = 1 << 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// Lowercase name.
    pub name: &'static str,
    /// Redis convention: `n` exactly n arguments including the name, `-n` at least n.
    pub arity: i32,
    pub flags: u32,
    /// Index of the first key (0 = no keys).
    pub first_key: i32,
    /// Index of the last key; negative counts from the end (-1 = last argument).
    pub last_key: i32,
    pub step: i32,
    pub kind: Kind,
    pub merge: Merge,
}

impl CommandSpec {
    pub fn is_write(&self) -> bool {
        self.flags & WRITE != 0
    }

    pub fn is_readonly(&self) -> bool {
        self.flags & READONLY != 0
    }

    pub fn is_fast(&self) -> bool {
        self.flags & FAST != 0
    }

    pub fn allowed_before_auth(&self) -> bool {
        self.flags & NO_AUTH != 0
    }

    /// Whether `argc` (arguments including the name) fits the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// Indices into `args` of the keys, in order. Empty for keyless commands and for
    /// argument lists whose arity is wrong.
    pub fn key_indices(&self, argc: usize) -> Vec<usize> {
        self.key_positions(argc).collect()
    }

    /// `key_indices` without collecting them (the per-command path does not allocate).
    pub fn key_positions(&self, argc: usize) -> impl Iterator<Item = usize> {
        let (first, last) = if self.first_key <= 0 || !self.arity_ok(argc) {
            (1, 0)
        } else {
            let last = if self.last_key < 0 {
                argc as i64 + i64::from(self.last_key)
            } else {
                i64::from(self.last_key)
            };
            (i64::from(self.first_key), last.min(argc as i64 - 1))
        };
        (first..=last)
            .step_by(self.step.max(1) as usize)
            .map(|i| i as usize)
    }

    /// The keys of a command, in order.
    pub fn keys<'a>(&self, args: &'a [Vec<u8>]) -> Vec<&'a [u8]> {
        self.key_positions(args.len())
            .map(|i| args[i].as_slice())
            .collect()
    }

    /// Redis's flag names, for COMMAND INFO.
    pub fn flag_names(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (bit, name) in [
            (WRITE, "write"),
            (READONLY, "readonly"),
            (DENYOOM, "denyoom"),
            (FAST, "fast"),
            (NO_AUTH, "no_auth"),
        ] {
            if self.flags & bit != 0 {
                out.push(name);
            }
        }
        out
    }
}

const fn c(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: (i32, i32, i32),
    kind: Kind,
    merge: Merge,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
        kind,
        merge,
    }
}

const K1: (i32, i32, i32) = (1, 1, 1);
const ALL: (i32, i32, i32) = (1, -1, 1);
const NONE: (i32, i32, i32) = (0, 0, 0);
use Kind::{Connection, Keyed, Keyspace, Server};
use Merge::{AllOk, None as One, PerKey, Sum};

/// Every command the store knows, sorted by name.
pub static COMMANDS: &[CommandSpec] = TABLE;

const TABLE: &[CommandSpec] = &[
    c("append", 3, WRITE | DENYOOM | FAST, K1, Keyed, One),
    c("auth", -2, NO_AUTH | FAST, NONE, Connection, One),
    c("client", -2, 0, NONE, Connection, One),
    c("command", -1, 0, NONE, Server, One),
    c("config", -2, 0, NONE, Server, One),
    c("dbsize", 1, READONLY | FAST, NONE, Keyspace, One),
    c("decr", 2, WRITE | DENYOOM | FAST, K1, Keyed, One),
    c("decrby", 3, WRITE | DENYOOM | FAST, K1, Keyed, One),
    c("del", -2, WRITE, ALL, Keyed, Sum),
    c("echo", 2, FAST, NONE, Connection, One),
    c("exists", -2, READONLY | FAST, ALL, Keyed, Sum),
    c("expire", -3, WRITE | FAST, K1, Keyed, One),
    c("expireat", -3, WRITE | FAST, K1, Keyed, One),
    c("expiretime", 2, READONLY | FAST, K1, Keyed, One),
    c("get", 2, READONLY | FAST, K1, Keyed, One),
    c("getdel", 2, WRITE | FAST, K1, Keyed, One),
    c("getex", -2, WRITE | FAST, K1, Keyed, One),
    c("getset", 3, WRITE | DENYOOM | FAST, K1, Keyed, One),
    c("hdel", -3, WRITE | FAST, K1, Keyed, One),
    c("hello", -1, NO_AUTH | FAST, NONE, Connection, One),
    c("hexists", 3, READONLY | FAST, K1, Keyed, One),
    c("hget", 3, READONLY | FAST, K1, Keyed, One),
    c("hgetall", 2, READONLY, K1, Keyed, One),
    c("hincrby", 4, WRITE | DENYOOM | FAST, K1, Keyed, One),
    c("hkeys", 2, READONLY, K1, Keyed, One),
    c("hlen", 2, READONLY | FAST, K1, Keyed, One),
    c("hmget", -3, READONLY | FAST, K1, Keyed, One),
    c("hmset", -4, WRITE | DENYOOM | FAST, K1, Keyed, One),
    c("hset", -4, WRITE | DENYOOM | FAST, K1, Keyed, One),
    c("hsetnx", 4, WRITE | DENYOOM | FAST, K1, Keyed, One),
    c("hstrlen", 3, READONLY | FAST, K1, Keyed, One),
    c("hvals", 2, READONLY, K1, Keyed, One),
    c("incr", 2, WRITE | DENYOOM | FAST, K1, Keyed, One),
    c("incrby", 3, WRITE | DENYOOM | FAST, K1, Keyed, One),
    c("info", -1, 0, NONE, Server, One),
    c("keys", 2, READONLY, NONE, Keyspace, One),
    c("mget", -2, READONLY | FAST, ALL, Keyed, PerKey),
    c("mset", -3, WRITE | DENYOOM, (1, -1, 2), Keyed, AllOk),
    c("persist", 2, WRITE | FAST, K1, Keyed, One),
    c("pexpire", -3, WRITE | FAST, K1, Keyed, One),
    c("pexpireat", -3, WRITE | FAST, K1, Keyed, One),
    c("pexpiretime", 2, READONLY | FAST, K1, Keyed, One),
    c("ping", -1, FAST, NONE, Connection, One),
    c("psetex", 4, WRITE | DENYOOM, K1, Keyed, One),
    c("pttl", 2, READONLY | FAST, K1, Keyed, One),
    c("quit", -1, NO_AUTH | FAST, NONE, Connection, One),
    c("rename", 3, WRITE, (1, 2, 1), Keyed, One),
    c("renamenx", 3, WRITE | FAST, (1, 2, 1), Keyed, One),
    c("reset", 1, NO_AUTH | FAST, NONE, Connection, One),
    c("sadd", -3, WRITE | DENYOOM | FAST, K1, Keyed, One),
    c("scan", -2, READONLY, NONE, Keyspace, One),
    c("scard", 2, READONLY | FAST, K1, Keyed, One),
    c("select", 2, FAST, NONE, Connection, One),
    c("set", -3, WRITE | DENYOOM, K1, Keyed, One),
    c("setex", 4, WRITE | DENYOOM, K1, Keyed, One),
    c("setnx", 3, WRITE | DENYOOM | FAST, K1, Keyed, One),
    c("sismember", 3, READONLY | FAST, K1, Keyed, One),
    c("smembers", 2, READONLY, K1, Keyed, One),
    c("srem", -3, WRITE | FAST, K1, Keyed, One),
    c("strlen", 2, READONLY | FAST, K1, Keyed, One),
    c("touch", -2, READONLY | FAST, ALL, Keyed, Sum),
    c("ttl", 2, READONLY | FAST, K1, Keyed, One),
    c("type", 2, READONLY | FAST, K1, Keyed, One),
    c("unlink", -2, WRITE | FAST, ALL, Keyed, Sum),
];

/// For each first letter `a..=z`, the range of `COMMANDS` whose names start with it.
static BY_LETTER: [(u8, u8); 26] = letter_ranges();

const fn letter_ranges() -> [(u8, u8); 26] {
    let mut out = [(0u8, 0u8); 26];
    let mut i = 0;
    while i < TABLE.len() {
        let letter = (TABLE[i].name.as_bytes()[0] - b'a') as usize;
        if out[letter].1 == 0 {
            out[letter].0 = i as u8;
        }
        out[letter].1 = i as u8 + 1;
        i += 1;
    }
    out
}

/// Looks a command up by name, case-insensitively. Every command is looked up several
/// times on its way (connection, router, execution): a binary search over the table
/// cost the node a tenth of its CPU in pipelined benchmarks, this a few comparisons.
pub fn spec(name: &[u8]) -> Option<&'static CommandSpec> {
    let letter = name.first()?.to_ascii_lowercase();
    if !letter.is_ascii_lowercase() {
        return None;
    }
    let (start, end) = BY_LETTER[usize::from(letter - b'a')];
    COMMANDS[usize::from(start)..usize::from(end)]
        .iter()
        .find(|spec| {
            spec.name.len() == name.len() && spec.name.as_bytes().eq_ignore_ascii_case(name)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_found_in_any_case() {
        for c in COMMANDS {
            assert_eq!(spec(c.name.as_bytes()), Some(c));
            assert_eq!(spec(c.name.to_ascii_uppercase().as_bytes()), Some(c));
            let longer = format!("{}x", c.name);
            assert!(spec(longer.as_bytes()).is_none_or(|s| s.name == longer));
            assert!(spec(&c.name.as_bytes()[1..]).is_none_or(|s| s.name != c.name));
        }
        assert!(spec(b"").is_none());
        assert!(spec(b"1get").is_none());
        assert!(spec(b"\xffget").is_none());
    }

    #[test]
    fn table_is_sorted_by_name() {
        for pair in COMMANDS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} >= {}",
                pair[0].name,
                pair[1].name
            );
        }
    }

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(spec(b"GeT").map(|s| s.name), Some("get"));
        assert!(spec(b"nosuchcommand").is_none());
        assert!(spec(b"averyveryverylongcommandname").is_none());
    }

    #[test]
    fn key_positions() {
        let args: Vec<Vec<u8>> = ["MSET", "a", "1", "b", "2"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let mset = spec(b"mset").unwrap();
        assert_eq!(mset.keys(&args), vec![b"a".as_slice(), b"b".as_slice()]);
        let del = spec(b"del").unwrap();
        assert_eq!(del.key_indices(4), vec![1, 2, 3]);
        let rename = spec(b"rename").unwrap();
        assert_eq!(rename.key_indices(3), vec![1, 2]);
        let set = spec(b"set").unwrap();
        assert_eq!(set.key_indices(5), vec![1]);
        assert!(set.key_indices(2).is_empty());
        assert!(spec(b"ping").unwrap().key_indices(1).is_empty());
    }

    #[test]
    fn arity() {
        let get = spec(b"get").unwrap();
        assert!(get.arity_ok(2) && !get.arity_ok(3) && !get.arity_ok(1));
        let set = spec(b"set").unwrap();
        assert!(set.arity_ok(3) && set.arity_ok(9) && !set.arity_ok(2));
    }
}
