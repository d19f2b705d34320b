//! Real clients nobody here wrote, against the store: redis-cli, redis-benchmark,
//! redis-py and an Express app with express-session + connect-redis.
//!
//! Each client runs against a three-node store (replicationFactor 2) started by the
//! cluster tests' harness, and again against one in-process node (password cases too).
//!
//! Needs: redis-tools (redis-cli, redis-benchmark), python3 with `redis` (pip), node with
//! `npm ci` run in tests/clients/node. A missing tool fails the test with what to install.

mod protocol_support;
mod support;

use protocol_support::TestServer;
use sessionplane_store::server::ServerArgs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a client program with a time limit, failing with a hint when it is missing.
fn run(
    program: &str,
    args: &[&str],
    env: &[(&str, String)],
    limit: Duration,
    hint: &str,
) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); {hint}"));
    let started = std::time::Instant::now();
    loop {
        match child.try_wait().expect("wait") {
            Some(_) => break,
            None if started.elapsed() > limit => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "{program} {args:?} ran over {limit:?}\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    child.wait_with_output().expect("output")
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Cli {
    addr: SocketAddr,
    password: Option<String>,
}

impl Cli {
    fn run(&self, args: &[&str]) -> String {
        let port = self.addr.port().to_string();
        let host = self.addr.ip().to_string();
        let mut full = vec!["-h", &host, "-p", &port];
        if let Some(pw) = &self.password {
            full.extend(["--no-auth-warning", "-a", pw.as_str()]);
        }
        full.extend(args);
        let out = run(
            "redis-cli",
            &full,
            &[],
            Duration::from_secs(30),
            "apt-get install redis-tools",
        );
        assert!(
            out.status.success(),
            "redis-cli {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout_of(&out).trim_end().to_string()
    }
}

fn redis_cli_session(addr: SocketAddr, password: Option<&str>) {
    let cli = Cli {
        addr,
        password: password.map(str::to_string),
    };
    assert_eq!(cli.run(&["PING"]), "PONG");
    assert_eq!(cli.run(&["SET", "cli:k", "hello", "EX", "100"]), "OK");
    assert_eq!(cli.run(&["GET", "cli:k"]), "hello");
    let ttl: i64 = cli.run(&["TTL", "cli:k"]).parse().expect("ttl");
    assert!((99..=100).contains(&ttl), "{ttl}");
    assert_eq!(cli.run(&["EXPIRE", "cli:k", "5", "LT"]), "1");
    assert_eq!(cli.run(&["HSET", "cli:h", "f1", "v1", "f2", "v2"]), "2");
    assert_eq!(cli.run(&["HGET", "cli:h", "f2"]), "v2");
    assert_eq!(cli.run(&["HGETALL", "cli:h"]), "f1\nv1\nf2\nv2");
    assert_eq!(cli.run(&["TYPE", "cli:h"]), "hash");
    let mut scanned: Vec<String> = cli
        .run(&["--scan", "--pattern", "cli:*"])
        .lines()
        .map(str::to_string)
        .collect();
    scanned.sort();
    assert_eq!(scanned, vec!["cli:h", "cli:k"]);
    let info = cli.run(&["INFO"]);
    assert!(
        info.contains("redis_version:7.4.0") && info.contains("# Keyspace"),
        "{info}"
    );
    let count: i64 = cli.run(&["COMMAND", "COUNT"]).parse().expect("count");
    assert!(count > 50);
    assert!(cli.run(&["COMMAND", "INFO", "get"]).starts_with("get\n2"));
    assert!(cli
        .run(&["NOSUCH", "a"])
        .starts_with("ERR unknown command 'NOSUCH'"));
    assert_eq!(cli.run(&["-3", "HGETALL", "cli:h"]), "f1 v1\nf2 v2");
    assert_eq!(cli.run(&["DEL", "cli:k", "cli:h"]), "2");
}

fn redis_cli_pipe(addr: SocketAddr) {
    let mut payload = String::new();
    for i in 0..1000 {
        payload.push_str(&format!("SET pipe:{i} {i}\r\n"));
    }
    let file = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(file.path(), payload).expect("write");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "redis-cli -h {} -p {} --pipe < {}",
            addr.ip(),
            addr.port(),
            file.path().display()
        ))
        .output()
        .expect("redis-cli --pipe");
    let text = stdout_of(&out);
    assert!(text.contains("errors: 0, replies: 1000"), "{text}");
}

fn redis_benchmark(addr: SocketAddr, pipeline: &str) {
    let port = addr.port().to_string();
    let host = addr.ip().to_string();
    let out = run(
        "redis-benchmark",
        &[
            "-h", &host, "-p", &port, "-t", "set,get", "-n", "20000", "-c", "50", "-P", pipeline,
            "--csv",
        ],
        &[],
        Duration::from_secs(240),
        "apt-get install redis-tools",
    );
    let text = stdout_of(&out);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "redis-benchmark failed: {errors}");
    assert!(
        !text.contains("ERR") && !errors.contains("Error"),
        "{text}\n{errors}"
    );
    for test in ["\"SET\"", "\"GET\""] {
        let line = text
            .lines()
            .find(|l| l.starts_with(test))
            .unwrap_or_else(|| panic!("no {test} result in {text}"));
        let rps: f64 = line
            .split(',')
            .nth(1)
            .map(|f| f.trim_matches('"'))
            .and_then(|f| f.parse().ok())
            .expect("rps");
        assert!(rps > 0.0, "{line}");
    }
}

fn redis_py(addr: SocketAddr, password: Option<&str>) {
    let script = repo_root().join("tests/clients/python/redis_py_check.py");
    let port = addr.port().to_string();
    let host = addr.ip().to_string();
    let mut args = vec![script.to_str().expect("path"), host.as_str(), port.as_str()];
    if let Some(pw) = password {
        args.push(pw);
    }
    let out = run(
        "python3",
        &args,
        &[],
        Duration::from_secs(120),
        "pip install redis",
    );
    assert!(
        out.status.success() && stdout_of(&out).contains("REDIS-PY CHECK OK"),
        "redis-py check failed:\n{}\n{}",
        stdout_of(&out),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn express_session(url_a: String, url_b: String) {
    let dir = repo_root().join("tests/clients/node");
    assert!(
        dir.join("node_modules/connect-redis").exists(),
        "run `npm ci` in {} first",
        dir.display()
    );
    let script = dir.join("session_app.mjs");
    let out = run(
        "node",
        &[script.to_str().expect("path")],
        &[("STORE_URL", url_a), ("STORE_URL_2", url_b)],
        Duration::from_secs(120),
        "install node and run npm ci in tests/clients/node",
    );
    assert!(
        out.status.success() && stdout_of(&out).contains("NODE SESSION CHECK OK"),
        "express-session check failed:\n{}\n{}",
        stdout_of(&out),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn redis_cli_against_a_node() {
    let s = TestServer::start(ServerArgs::default());
    redis_cli_session(s.addr, None);
    redis_cli_pipe(s.addr);
}

#[test]
fn redis_cli_with_a_password() {
    let s = TestServer::start(ServerArgs {
        password: Some("pw-for-cli".into()),
        ..ServerArgs::default()
    });
    redis_cli_session(s.addr, Some("pw-for-cli"));
}

#[test]
fn redis_benchmark_without_errors() {
    let s = TestServer::start(ServerArgs::default());
    redis_benchmark(s.addr, "1");
    redis_benchmark(s.addr, "16");
}

#[test]
fn redis_py_resp2_and_resp3() {
    let s = TestServer::start(ServerArgs::default());
    redis_py(s.addr, None);
    let s = TestServer::start(ServerArgs {
        password: Some("pw-for-py".into()),
        ..ServerArgs::default()
    });
    redis_py(s.addr, Some("pw-for-py"));
}

#[test]
fn express_session_with_connect_redis() {
    let s = TestServer::start(ServerArgs::default());
    let url = format!("redis://{}", s.addr);
    express_session(url.clone(), url);
}

/// A three-node store with replicationFactor 2, as processes on loopback; the nodes stop
/// when the returned fleet is dropped.
fn three_node_cluster(rt: &tokio::runtime::Runtime) -> (support::procs::Fleet, Vec<SocketAddr>) {
    rt.block_on(async {
        let mut fleet = support::procs::Fleet::new(64, 2, 0.25);
        let names = ["n1", "n2", "n3"];
        fleet.start(&names).await;
        let ids: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        fleet.master.bootstrap(&ids).await;
        let addrs = fleet
            .resps(&ids)
            .iter()
            .map(|a| a.parse().expect("resp address"))
            .collect();
        (fleet, addrs)
    })
}

#[test]
fn real_clients_against_a_three_node_cluster() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (fleet, addrs) = three_node_cluster(&rt);
    let check = |name: &str, f: &dyn Fn()| {
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            eprintln!("{name} failed; node logs:\n{}", fleet.logs());
            std::panic::resume_unwind(e);
        }
    };
    check("redis-cli", &|| redis_cli_session(addrs[0], None));
    check("redis-cli --pipe", &|| redis_cli_pipe(addrs[1]));
    check("redis-py", &|| redis_py(addrs[2], None));
    check("express-session", &|| {
        express_session(
            format!("redis://{}", addrs[0]),
            format!("redis://{}", addrs[1]),
        )
    });
    check("redis-benchmark", &|| {
        redis_benchmark(addrs[0], "1");
        redis_benchmark(addrs[1], "16");
    });
    drop(fleet);
}
