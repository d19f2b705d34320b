//! One client's connection state and the commands that act on it (or on the server)
//! rather than on keys: PING, AUTH, HELLO, CLIENT, SELECT, RESET, QUIT, INFO, COMMAND, CONFIG.

use super::info;
use super::shared::Shared;
use crate::backend::Backend;
use crate::command::errors::{self, err, NOAUTH, NOT_INTEGER, SYNTAX, WRONGPASS};
use crate::command::{self, parse_i64, spec::COMMANDS, CommandSpec, Kind};
use crate::reply::Reply;
use crate::resp::Protocol;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What the connection does after answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum After {
    Continue,
    Close,
}

pub(crate) struct Session {
    pub id: u64,
    pub peer: SocketAddr,
    pub proto: Protocol,
    pub authenticated: bool,
    name: Option<Vec<u8>>,
    lib_name: Option<Vec<u8>>,
    lib_ver: Option<Vec<u8>>,
    created: Instant,
    last_command: &'static str,
}

fn ok() -> Reply {
    Reply::Simple("OK".into())
}

fn bulk(s: impl Into<Vec<u8>>) -> Reply {
    Reply::Bulk(s.into())
}

/// Compares without an early exit, so timing does not reveal how much of a guess matched.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Session {
    pub fn new(shared: &Shared, peer: SocketAddr) -> Self {
        Session {
            id: shared.next_client_id.fetch_add(1, Ordering::Relaxed),
            peer,
            proto: Protocol::Resp2,
            authenticated: shared.config.password.is_none(),
            name: None,
            lib_name: None,
            lib_ver: None,
            created: Instant::now(),
            last_command: "NULL",
        }
    }

    /// Answers one command, passing data commands to the backend.
    pub async fn handle(
        &mut self,
        args: Vec<Vec<u8>>,
        shared: &Shared,
        backend: &dyn Backend,
    ) -> (Reply, After) {
        shared.commands_processed.fetch_add(1, Ordering::Relaxed);
        // Redis's order: existence, arity, then authentication.
        let Some(spec) = args.first().and_then(|name| command::spec(name)) else {
            return (errors::unknown_command(&args), After::Continue);
        };
        self.last_command = spec.name;
        if !spec.arity_ok(args.len()) {
            return (errors::wrong_arity(spec.name), After::Continue);
        }
        if !self.authenticated && !spec.allowed_before_auth() {
            return (err(NOAUTH), After::Continue);
        }
        match spec.kind {
            Kind::Keyed => {
                if let Some(reply) = self.check_key_sizes(spec, &args, shared) {
                    return (reply, After::Continue);
                }
                (backend.call(args).await, After::Continue)
            }
            Kind::Keyspace => (backend.call(args).await, After::Continue),
            Kind::Connection | Kind::Server => self.local(spec, &args, shared, backend),
        }
    }

    /// Whether `args` is a keyed command `handle` would pass to the backend as it is,
    /// so it can join a batch of them (`handle_batch`).
    pub fn batchable(&self, args: &[Vec<u8>], shared: &Shared) -> bool {
        let Some(spec) = args.first().and_then(|name| command::spec(name)) else {
            return false;
        };
        spec.kind == Kind::Keyed
            && spec.arity_ok(args.len())
            && (self.authenticated || spec.allowed_before_auth())
            && self.check_key_sizes(spec, args, shared).is_none()
    }

    /// Answers consecutive commands that each passed `batchable`, in order.
    pub async fn handle_batch(
        &mut self,
        mut commands: Vec<Vec<Vec<u8>>>,
        shared: &Shared,
        backend: &dyn Backend,
    ) -> Vec<Reply> {
        shared
            .commands_processed
            .fetch_add(commands.len() as u64, Ordering::Relaxed);
        if let Some(spec) = commands
            .last()
            .and_then(|args| args.first())
            .and_then(|name| command::spec(name))
        {
            self.last_command = spec.name;
        }
        match commands.len() {
            1 => match commands.pop() {
                Some(args) => vec![backend.call(args).await],
                None => Vec::new(),
            },
            _ => backend.call_batch(commands).await,
        }
    }

    fn check_key_sizes(
        &self,
        spec: &CommandSpec,
        args: &[Vec<u8>],
        shared: &Shared,
    ) -> Option<Reply> {
        let max = shared.config.max_key_bytes;
        // Common case: no argument at all is that long, so no key is.
        if args.iter().all(|a| a.len() <= max) {
            return None;
        }
        spec.keys(args)
            .into_iter()
            .find(|k| k.len() > max)
            .map(|k| {
                Reply::Error(format!(
                    "ERR key of {} bytes exceeds the maximum key size of {max} bytes",
                    k.len()
                ))
            })
    }

    fn local(
        &mut self,
        spec: &CommandSpec,
        args: &[Vec<u8>],
        shared: &Shared,
        backend: &dyn Backend,
    ) -> (Reply, After) {
        let reply = match spec.name {
            "ping" => match args.len() {
                1 => Reply::Simple("PONG".into()),
                2 => bulk(args[1].clone()),
                _ => errors::wrong_arity("ping"),
            },
            "echo" => bulk(args[1].clone()),
            "select" => match parse_i64(&args[1]) {
                Some(0) => ok(),
                Some(_) => err("ERR DB index is out of range"),
                None => err(NOT_INTEGER),
            },
            "auth" => self.auth_command(args, shared),
            "hello" => self.hello(args, shared),
            "client" => self.client(args, shared),
            "reset" => {
                self.proto = Protocol::Resp2;
                self.name = None;
                self.authenticated = shared.config.password.is_none();
                Reply::Simple("RESET".into())
            }
            "quit" => return (ok(), After::Close),
            "info" => {
                let text = info::render(&args[1..], shared, &backend.stats());
                Reply::Verbatim("txt".into(), text)
            }
            "command" => command_command(args),
            "config" => config_command(args, shared),
            _ => errors::unknown_command(args),
        };
        (reply, After::Continue)
    }

    /// Checks a username/password pair; `user` is `default` when not given.
    fn check_password(&self, user: &[u8], password: &[u8], shared: &Shared) -> bool {
        if !user.eq_ignore_ascii_case(b"default") {
            return false;
        }
        match &shared.config.password {
            // The default user without a password accepts any password, as in Redis.
            None => true,
            Some(expected) => same_secret(expected.as_bytes(), password),
        }
    }

    fn auth_command(&mut self, args: &[Vec<u8>], shared: &Shared) -> Reply {
        let (user, password) = match args.len() {
            2 => {
                if shared.config.password.is_none() {
                    return err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
                }
                (b"default".as_slice(), &args[1])
            }
            3 => (args[1].as_slice(), &args[2]),
            _ => return err(SYNTAX),
        };
        if self.check_password(user, password, shared) {
            self.authenticated = true;
            ok()
        } else {
            err(WRONGPASS)
        }
    }

    fn hello(&mut self, args: &[Vec<u8>], shared: &Shared) -> Reply {
        let mut proto = self.proto;
        if let Some(ver) = args.get(1) {
            proto = match parse_i64(ver) {
                Some(2) => Protocol::Resp2,
                Some(3) => Protocol::Resp3,
                Some(_) => return err("NOPROTO unsupported protocol version"),
                None => return err("ERR Protocol version is not an integer or out of range"),
            };
        }
        let mut auth = None;
        let mut setname = None;
        let mut i = 2;
        while i < args.len() {
            let opt = &args[i];
            if opt.eq_ignore_ascii_case(b"AUTH") && i + 2 < args.len() {
                auth = Some((&args[i + 1], &args[i + 2]));
                i += 3;
            } else if opt.eq_ignore_ascii_case(b"SETNAME") && i + 1 < args.len() {
                setname = Some(&args[i + 1]);
                i += 2;
            } else {
                return Reply::Error(errors::sanitize(&format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(opt)
                )));
            }
        }
        match auth {
            Some((user, password)) => {
                if !self.check_password(user, password, shared) {
                    return err(WRONGPASS);
                }
                self.authenticated = true;
            }
            None if !self.authenticated => {
                return err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
            }
            None => {}
        }
        if let Some(name) = setname {
            if let Err(e) = validate_name(name) {
                return e;
            }
            self.name = Some(name.clone()).filter(|n| !n.is_empty());
        }
        self.proto = proto;
        Reply::Map(vec![
            (bulk("server"), bulk("redis")),
            (bulk("version"), bulk(info::REDIS_VERSION)),
            (bulk("proto"), Reply::Integer(proto.version())),
            (bulk("id"), Reply::Integer(self.id as i64)),
            (bulk("mode"), bulk("standalone")),
            (bulk("role"), bulk("master")),
            (bulk("modules"), Reply::Array(vec![])),
        ])
    }

    fn client(&mut self, args: &[Vec<u8>], shared: &Shared) -> Reply {
        let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        let arity = |n: usize| {
            if args.len() == n {
                None
            } else {
                Some(errors::wrong_arity(&format!("client|{sub}")))
            }
        };
        match sub.as_str() {
            "id" => arity(2).unwrap_or(Reply::Integer(self.id as i64)),
            "getname" => {
                arity(2).unwrap_or_else(|| self.name.clone().map_or(Reply::Nil, Reply::Bulk))
            }
            "setname" => {
                if let Some(e) = arity(3) {
                    return e;
                }
                match validate_name(&args[2]) {
                    Ok(()) => {
                        self.name = Some(args[2].clone()).filter(|n| !n.is_empty());
                        ok()
                    }
                    Err(e) => e,
                }
            }
            "setinfo" => {
                if let Some(e) = arity(4) {
                    return e;
                }
                if args[3].iter().any(|&b| b <= b' ' || b > b'~') {
                    return err("ERR lib-name and lib-ver cannot contain spaces, newlines or special characters.");
                }
                if args[2].eq_ignore_ascii_case(b"lib-name") {
                    self.lib_name = Some(args[3].clone());
                } else if args[2].eq_ignore_ascii_case(b"lib-ver") {
                    self.lib_ver = Some(args[3].clone());
                } else {
                    return Reply::Error(errors::sanitize(&format!(
                        "ERR Unrecognized option '{}'",
                        String::from_utf8_lossy(&args[2])
                    )));
                }
                ok()
            }
            "info" => arity(2).unwrap_or_else(|| bulk(self.describe() + "\n")),
            "list" => bulk(self.describe() + "\n"),
            "no-evict" | "no-touch" => arity(3).unwrap_or_else(ok),
            "help" => Reply::Array(
                [
                    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "ID",
                    "GETNAME",
                    "SETNAME <name>",
                    "SETINFO <LIB-NAME|LIB-VER> <value>",
                    "INFO",
                    "LIST",
                    "NO-EVICT (ON|OFF)",
                    "NO-TOUCH (ON|OFF)",
                ]
                .iter()
                .map(|s| Reply::Simple((*s).into()))
                .collect(),
            ),
            _ => {
                let _ = shared;
                errors::unknown_subcommand("client", &args[1])
            }
        }
    }

    /// One line in the format of CLIENT INFO / CLIENT LIST.
    fn describe(&self) -> String {
        let text = |v: &Option<Vec<u8>>| {
            v.as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .into_owned()
        };
        format!(
            "id={} addr={} laddr= fd=0 name={} age={} idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 watch=0 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.peer,
            text(&self.name),
            self.created.elapsed().as_secs(),
            self.last_command,
            self.proto.version(),
            text(&self.lib_name),
            text(&self.lib_ver),
        )
    }
}

fn validate_name(name: &[u8]) -> Result<(), Reply> {
    if name.iter().any(|&b| b <= b' ' || b > b'~') {
        return Err(err(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

/// COMMAND, COMMAND COUNT/LIST/INFO/DOCS: as much as redis-cli and client libraries ask.
fn command_command(args: &[Vec<u8>]) -> Reply {
    let Some(sub) = args.get(1) else {
        return Reply::Array(COMMANDS.iter().map(command_info).collect());
    };
    let sub = String::from_utf8_lossy(sub).to_ascii_lowercase();
    match sub.as_str() {
        "count" => Reply::Integer(COMMANDS.len() as i64),
        "list" => Reply::Array(COMMANDS.iter().map(|c| bulk(c.name)).collect()),
        "info" => {
            if args.len() == 2 {
                return Reply::Array(COMMANDS.iter().map(command_info).collect());
            }
            Reply::Array(
                args[2..]
                    .iter()
                    .map(|n| command::spec(n).map_or(Reply::Nil, command_info))
                    .collect(),
            )
        }
        // Empty docs: redis-cli then falls back to its built-in help.
        "docs" => Reply::Map(vec![]),
        _ => errors::unknown_subcommand("command", &args[1]),
    }
}

fn command_info(spec: &CommandSpec) -> Reply {
    Reply::Array(vec![
        bulk(spec.name),
        Reply::Integer(i64::from(spec.arity)),
        Reply::Set(
            spec.flag_names()
                .into_iter()
                .map(|f| Reply::Simple(f.into()))
                .collect(),
        ),
        Reply::Integer(i64::from(spec.first_key)),
        Reply::Integer(i64::from(spec.last_key)),
        Reply::Integer(i64::from(spec.step)),
        Reply::Set(vec![]),
        Reply::Set(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

/// CONFIG GET answers a few read-only parameters clients and tools look at.
fn config_command(args: &[Vec<u8>], shared: &Shared) -> Reply {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match sub.as_str() {
        "get" if args.len() >= 3 => {
            let c = &shared.config;
            let params: Vec<(&str, String)> = vec![
                ("appendonly", "no".into()),
                ("databases", "1".into()),
                ("maxclients", c.max_clients.to_string()),
                ("maxmemory", "0".into()),
                ("maxmemory-policy", "noeviction".into()),
                ("port", c.listen.port().to_string()),
                ("proto-max-bulk-len", c.limits.max_bulk_len.to_string()),
                ("save", String::new()),
                (
                    "timeout",
                    c.idle_timeout.map_or(0, |d| d.as_secs()).to_string(),
                ),
            ];
            let mut out = Vec::new();
            for (name, value) in &params {
                if args[2..]
                    .iter()
                    .any(|p| command::scan::glob_match(&p.to_ascii_lowercase(), name.as_bytes()))
                {
                    out.push((bulk(*name), bulk(value.as_str())));
                }
            }
            Reply::Map(out)
        }
        "get" => errors::wrong_arity("config|get"),
        "resetstat" => ok(),
        "set" => {
            err("ERR CONFIG SET is not supported: configure sessionplane through its arguments")
        }
        _ => errors::unknown_subcommand("config", &args[1]),
    }
}
