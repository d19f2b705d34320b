//! Store nodes as child processes of the test.

use super::{eventually, free_port, http};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct NodeProc {
    pub id: String,
    pub resp: String,
    pub peer: String,
    pub admin: String,
    pub data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// `--fsync` policy: "always" unless a test asks for "everysec".
    pub fsync: &'static str,
    /// Network namespace the node runs in (None: the test's own, on loopback).
    netns: Option<String>,
}

impl NodeProc {
    /// Allocates ports and a data directory under `root`; does not start the node.
    pub fn new(root: &Path, id: &str) -> NodeProc {
        NodeProc {
            id: id.to_string(),
            resp: format!("127.0.0.1:{}", free_port()),
            peer: format!("127.0.0.1:{}", free_port()),
            admin: format!("127.0.0.1:{}", free_port()),
            data: root.join(id),
            log: root.join(format!("{id}.log")),
            child: None,
            fsync: "always",
            netns: None,
        }
    }

    /// A node that runs in network namespace `netns` and listens on `ip` (the standard
    /// ports, since the address is its own).
    pub fn in_netns(root: &Path, id: &str, netns: &str, ip: std::net::Ipv4Addr) -> NodeProc {
        NodeProc {
            id: id.to_string(),
            resp: format!("{ip}:6379"),
            peer: format!("{ip}:7379"),
            admin: format!("{ip}:9379"),
            data: root.join(id),
            log: root.join(format!("{id}.log")),
            child: None,
            fsync: "always",
            netns: Some(netns.to_string()),
        }
    }

    pub fn start(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open node log");
        let err = log.try_clone().expect("clone log handle");
        let bin = env!("CARGO_BIN_EXE_store-node");
        // `ip netns exec` execs the node in place, so the child is the node itself and
        // kill9 reaches it.
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin]);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .args([
                "--id",
                &self.id,
                "--listen",
                &self.resp,
                "--peer-listen",
                &self.peer,
                "--admin",
                &self.admin,
                "--fsync",
                self.fsync,
            ])
            .arg("--data-dir")
            .arg(&self.data)
            .env("RUST_LOG", "info,sessionplane_store=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn store-node");
        self.child = Some(child);
    }

    /// Starts and waits for the admin API to answer.
    pub async fn start_and_wait(&mut self) {
        self.start();
        let admin = self.admin.clone();
        eventually(Duration::from_secs(20), "node admin API", || {
            let admin = admin.clone();
            async move { matches!(http(&admin, "GET", "/healthz", None).await, Ok((200, _))) }
        })
        .await;
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A set of node processes sharing a temporary root, with the master that configures
/// them.
pub struct Fleet {
    pub root: tempfile::TempDir,
    pub nodes: std::collections::BTreeMap<String, NodeProc>,
    pub master: super::master::Master,
    /// `--fsync` policy of the nodes this fleet creates.
    pub fsync: &'static str,
}

impl Fleet {
    pub fn new(partitions: u32, rf: u32, epsilon: f64) -> Fleet {
        Fleet {
            root: tempfile::tempdir().expect("temporary directory"),
            nodes: Default::default(),
            master: super::master::Master::new(partitions, rf, epsilon),
            fsync: "always",
        }
    }

    /// Starts nodes `ids` (new ones get ports and a data directory) and lists them as
    /// members in the master's next configuration.
    pub async fn start(&mut self, ids: &[&str]) {
        let fsync = self.fsync;
        for id in ids {
            let root = self.root.path().to_path_buf();
            let node = self.nodes.entry(id.to_string()).or_insert_with(|| {
                let mut node = NodeProc::new(&root, id);
                node.fsync = fsync;
                node
            });
            node.start_and_wait().await;
            self.master.members.insert(
                id.to_string(),
                super::master::Addrs {
                    peer: node.peer.clone(),
                    admin: node.admin.clone(),
                },
            );
        }
    }

    pub fn resp(&self, id: &str) -> String {
        self.nodes[id].resp.clone()
    }

    pub fn resps(&self, ids: &[String]) -> Vec<String> {
        ids.iter().map(|id| self.resp(id)).collect()
    }

    /// Logs of every node, for a failing test's message.
    pub fn logs(&self) -> String {
        self.nodes
            .values()
            .map(|n| format!("--- {} ---\n{}", n.id, n.log_tail(30)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Whether a node's health endpoint answers.
pub async fn alive(admin: &str) -> bool {
    matches!(http(admin, "GET", "/healthz", None).await, Ok((200, _)))
}
