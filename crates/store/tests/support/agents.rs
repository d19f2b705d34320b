//! Replicated agents as child processes on loopback, driven with real Redis clients.

use super::{eventually, free_port, http};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The failure-detector timeout the tests give their agents.
pub const PEER_TIMEOUT_MS: u64 = 600;

pub struct AgentProc {
    pub id: String,
    pub resp: String,
    pub peer: String,
    pub admin: String,
    pub propagation: &'static str,
    /// Every agent's peer address, this one's included (an agent must skip itself).
    pub peers: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    /// Network namespace the agent runs in (None: the test's own, on loopback).
    netns: Option<String>,
    /// The store password (AUTH on the Redis port, the peer port's challenge).
    pub password: Option<String>,
}

impl AgentProc {
    pub fn start(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open agent log");
        let err = log.try_clone().expect("clone log handle");
        let bin = env!("CARGO_BIN_EXE_replicated-agent");
        // `ip netns exec` execs the agent in place: the child is the agent itself, so
        // signals reach it.
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin]);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .args(["--id", &self.id, "--listen", &self.resp])
            .args(["--peer-listen", &self.peer, "--admin", &self.admin])
            .args(["--propagation", self.propagation])
            .args(["--peers", &self.peers.join(","), "--advertise", &self.peer])
            .args(["--peer-timeout-ms", &PEER_TIMEOUT_MS.to_string()])
            .args(["--anti-entropy-interval-ms", "300"])
            .args(["--bootstrap-timeout-secs", "5"])
            .env("RUST_LOG", "info,sessionplane_store=debug")
            .env(
                "SESSIONPLANE_PASSWORD",
                self.password.as_deref().unwrap_or(""),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn replicated-agent");
        self.child = Some(child);
    }

    /// Until /readyz answers 200; an agent that exits first fails the test at once, with
    /// its log (a bind error, a crash), rather than after the whole wait.
    pub async fn wait_ready(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if matches!(
                http(&self.admin, "GET", "/readyz", None).await,
                Ok((200, _))
            ) {
                return;
            }
            assert!(
                self.is_running(),
                "{} exited before it was ready:\n{}",
                self.id,
                self.log()
            );
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {} to be ready:\n{}",
                self.id,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let st = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(st.success(), "kill {sig} {pid}");
    }

    /// SIGSTOP: the agent keeps its state and sockets but answers nothing (a peer that
    /// is down or cut off, from the others' point of view).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// SIGTERM (what the kubelet sends a sidecar when its pod goes) and wait for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        self.child.take().expect("running").wait().expect("wait")
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `redis-cli` against this agent; stdout, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let (host, port) = self.resp.rsplit_once(':').expect("host:port");
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", host, "-p", port]);
        if let Some(pw) = &self.password {
            cmd.args(["--no-auth-warning", "-a", pw]);
        }
        let out = cmd
            .args(args)
            .output()
            .expect("redis-cli (install redis-tools)");
        assert!(out.status.success(), "redis-cli {args:?} failed");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A counter or gauge from /metrics (the `_total` suffix included for counters).
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, body) = http(&self.admin, "GET", "/metrics", None)
            .await
            .expect("metrics");
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(' '))
            .filter(|(n, _)| *n == name || n.starts_with(&format!("{name}{{")))
            .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
            .sum()
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A paused agent must not outlive the test.
            let _ = self.child.as_ref().map(|c| {
                Command::new("kill")
                    .args(["-CONT", &c.id().to_string()])
                    .status()
            });
        }
        self.kill9();
    }
}

/// `n` agents that list each other as peers; started and ready.
pub async fn fleet(root: &Path, n: usize, propagation: &'static str) -> Vec<AgentProc> {
    fleet_in(root, n, propagation, None).await
}

/// `fleet`, with agent i in network namespace `net.node_ns(i)` on `net.node_ip(i)`.
pub async fn fleet_in(
    root: &Path,
    n: usize,
    propagation: &'static str,
    net: Option<&super::netns::Net>,
) -> Vec<AgentProc> {
    fleet_with(root, n, propagation, net, None).await
}

/// `fleet_in`, every agent given `password`.
pub async fn fleet_with(
    root: &Path,
    n: usize,
    propagation: &'static str,
    net: Option<&super::netns::Net>,
    password: Option<&str>,
) -> Vec<AgentProc> {
    let addr = |i: usize, port: u16| match net {
        Some(net) => format!("{}:{port}", net.node_ip(i)),
        None => format!("127.0.0.1:{}", free_port()),
    };
    let peers: Vec<String> = (0..n).map(|i| addr(i, 7379)).collect();
    let mut agents: Vec<AgentProc> = (0..n)
        .map(|i| AgentProc {
            id: format!("agent-{i}"),
            resp: addr(i, 6379),
            peer: peers[i].clone(),
            admin: addr(i, 9379),
            propagation,
            peers: peers.clone(),
            log: root.join(format!("agent-{i}.log")),
            child: None,
            netns: net.map(|net| net.node_ns(i).to_string()),
            password: password.map(str::to_string),
        })
        .collect();
    for a in &mut agents {
        a.start();
    }
    for a in &mut agents {
        a.wait_ready().await;
    }
    // Every agent holds every other live before the test writes.
    for a in &agents {
        let admin = a.admin.clone();
        eventually(Duration::from_secs(20), "peers live", || {
            let admin = admin.clone();
            async move {
                http(&admin, "GET", "/v1/status", None)
                    .await
                    .ok()
                    .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
                    .and_then(|v| {
                        v["peers"]
                            .as_array()
                            .map(|p| p.len() == n - 1 && p.iter().all(|x| x["live"] == true))
                    })
                    .unwrap_or(false)
            }
        })
        .await;
    }
    agents
}

/// The `nth` (from 0) of the agents that join `fleet`: it knows the fleet, which does not
/// know it (a new pod that the peers Service's DNS does not list yet), nor the other
/// newcomers; not started.
pub fn newcomer(
    root: &Path,
    fleet: &[AgentProc],
    propagation: &'static str,
    nth: usize,
) -> AgentProc {
    let peer = format!("127.0.0.1:{}", free_port());
    let mut peers: Vec<String> = fleet.iter().map(|a| a.peer.clone()).collect();
    peers.push(peer.clone());
    let id = format!("agent-{}", fleet.len() + nth);
    AgentProc {
        resp: format!("127.0.0.1:{}", free_port()),
        peer,
        admin: format!("127.0.0.1:{}", free_port()),
        propagation,
        peers,
        log: root.join(format!("{id}.log")),
        id,
        child: None,
        netns: None,
        password: fleet.first().and_then(|a| a.password.clone()),
    }
}
