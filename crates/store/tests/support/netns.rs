//! Network namespaces for partition tests: every store node in its own namespace,
//! connected by a veth pair to a bridge that lives in a "switch" namespace of its own
//! (so the host's firewall and bridge-netfilter settings never see node-to-node
//! traffic), and the host (the test: clients and master) connected to the same bridge.
//!
//! ```text
//!   host: 10.213.S.1 (clients), 10.213.S.2 (master)
//!     │ veth
//!   switch netns: bridge br0 ── veth ── node netns i: 10.213.S.(10+i)
//! ```
//!
//! `Net` is a guard: whatever it created is deleted when it is dropped, also when the
//! test panics half-way. Names carry the test process's pid, and a new `Net` first
//! deletes namespaces left by test processes that no longer exist (killed before their
//! guards ran). Creating namespaces needs root; a test that cannot gets a panic saying
//! so, never a silent skip.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

const PREFIX: &str = "spn-";
static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs a command; its stderr in the error.
pub fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub struct Net {
    /// `spn-<pid>-<n>`: prefix of every namespace of this network.
    name: String,
    /// Third octet of 10.213.S.0/24.
    subnet: u8,
    host_if: String,
    switch: String,
    nodes: Vec<String>,
    created_host_if: bool,
    created: Vec<String>,
}

impl Net {
    /// A switch and `n` node namespaces. Panics with the reason if the kernel or the
    /// user does not allow it.
    pub fn new(n: usize) -> Net {
        sweep_leftovers();
        let seq = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let name = format!("{PREFIX}{pid}-{seq}");
        let mut net = Net {
            subnet: free_subnet(pid, seq),
            host_if: format!("sp{:x}h{seq}", pid),
            switch: format!("{name}-sw"),
            nodes: (0..n).map(|i| format!("{name}-n{i}")).collect(),
            name,
            created_host_if: false,
            created: Vec::new(),
        };
        if let Err(e) = net.build() {
            panic!(
                "cannot set up network namespaces for the partition test (needs root, \
                 iproute2 and veth/bridge support): {e}"
            );
        }
        net
    }

    fn build(&mut self) -> Result<(), String> {
        let sw = self.switch.clone();
        run(&["ip", "netns", "add", &sw])?;
        self.created.push(sw.clone());
        run(&["ip", "-n", &sw, "link", "set", "lo", "up"])?;
        run(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;
        // Host side.
        let peer = "host";
        run(&[
            "ip",
            "link",
            "add",
            &self.host_if,
            "type",
            "veth",
            "peer",
            "name",
            peer,
            "netns",
            &sw,
        ])?;
        self.created_host_if = true;
        for ip in [self.client_ip(), self.master_ip()] {
            run(&[
                "ip",
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                &self.host_if,
            ])?;
        }
        run(&["ip", "link", "set", &self.host_if, "up"])?;
        run(&["ip", "-n", &sw, "link", "set", peer, "master", "br0", "up"])?;
        // Nodes.
        for i in 0..self.nodes.len() {
            let ns = self.nodes[i].clone();
            run(&["ip", "netns", "add", &ns])?;
            self.created.push(ns.clone());
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
            let port = self.port(i);
            run(&[
                "ip", "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port,
                "netns", &sw,
            ])?;
            run(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", self.node_ip(i)),
                "dev",
                "eth0",
            ])?;
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
            run(&["ip", "-n", &sw, "link", "set", &port, "master", "br0", "up"])?;
        }
        Ok(())
    }

    /// The switch-side end of node `i`'s link.
    fn port(&self, i: usize) -> String {
        format!("n{i}")
    }

    pub fn node_ns(&self, i: usize) -> &str {
        &self.nodes[i]
    }

    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.subnet, 10 + i as u8)
    }

    /// Source address of the test's clients.
    pub fn client_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.subnet, 1)
    }

    /// Source address the test's master binds to.
    pub fn master_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.subnet, 2)
    }

    /// Unplugs node `i`'s cable: nobody reaches it, it reaches nobody (packets vanish,
    /// connections time out).
    pub fn unplug(&self, i: usize) {
        run(&[
            "ip",
            "-n",
            &self.switch,
            "link",
            "set",
            &self.port(i),
            "down",
        ])
        .expect("unplug a node");
    }

    pub fn plug(&self, i: usize) {
        run(&["ip", "-n", &self.switch, "link", "set", &self.port(i), "up"]).expect("plug a node");
    }

    /// Firewall inside node `i`'s namespace: drop every packet except loopback and the
    /// TCP connections between `allowed` and the node's `port`.
    pub fn isolate_except(&self, i: usize, allowed: Ipv4Addr, port: u16) {
        let ns = &self.nodes[i];
        let peer = allowed.to_string();
        let port = port.to_string();
        let rules: [&[&str]; 6] = [
            &["-A", "INPUT", "-i", "lo", "-j", "ACCEPT"],
            &[
                "-A", "INPUT", "-s", &peer, "-p", "tcp", "--dport", &port, "-j", "ACCEPT",
            ],
            &["-A", "INPUT", "-j", "DROP"],
            &["-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT"],
            &[
                "-A", "OUTPUT", "-d", &peer, "-p", "tcp", "--sport", &port, "-j", "ACCEPT",
            ],
            &["-A", "OUTPUT", "-j", "DROP"],
        ];
        for rule in rules {
            let mut args = vec!["ip", "netns", "exec", ns, "iptables", "-w"];
            args.extend_from_slice(rule);
            run(&args).expect("install the partition's firewall rules");
        }
    }

    /// Firewall inside node `i`'s namespace: drop every packet to or from `peer`.
    pub fn drop_peer(&self, i: usize, peer: Ipv4Addr) {
        let ns = &self.nodes[i];
        let peer = peer.to_string();
        for rule in [
            ["-A", "INPUT", "-s", &peer, "-j", "DROP"],
            ["-A", "OUTPUT", "-d", &peer, "-j", "DROP"],
        ] {
            let mut args = vec!["ip", "netns", "exec", ns, "iptables", "-w"];
            args.extend_from_slice(&rule);
            run(&args).expect("install the partition's firewall rules");
        }
    }

    /// Removes every firewall rule of node `i`'s namespace.
    pub fn heal_firewall(&self, i: usize) {
        for chain in ["INPUT", "OUTPUT"] {
            run(&[
                "ip",
                "netns",
                "exec",
                &self.nodes[i],
                "iptables",
                "-w",
                "-F",
                chain,
            ])
            .expect("flush the partition's firewall rules");
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends inside it, and with them their
        // peers; the host end is deleted explicitly in case the switch never existed.
        for ns in self.created.iter().rev() {
            if let Err(e) = run(&["ip", "netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
        if self.created_host_if && run(&["ip", "link", "show", &self.host_if]).is_ok() {
            if let Err(e) = run(&["ip", "link", "del", &self.host_if]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// A /24 in 10.213.0.0/16 that no address or route of the host uses yet.
fn free_subnet(pid: u32, seq: u32) -> u8 {
    let used = format!(
        "{}\n{}",
        run(&["ip", "-4", "addr", "show"]).unwrap_or_default(),
        run(&["ip", "-4", "route", "show"]).unwrap_or_default()
    );
    let start = (pid.wrapping_mul(31).wrapping_add(seq.wrapping_mul(7))) % 250;
    (0..250)
        .map(|k| ((start + k) % 250 + 1) as u8)
        .find(|s| !used.contains(&format!("10.213.{s}.")))
        .expect("a free 10.213.x.0/24 subnet")
}

/// Deletes namespaces (and their host links) left by partition tests whose process is
/// gone.
fn sweep_leftovers() {
    let Ok(list) = run(&["ip", "netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let Some(ns) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = ns.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("deleting namespace {ns} left by a test process that is gone");
            let _ = run(&["ip", "netns", "del", ns]);
            if let Some(seq) = rest.split('-').nth(1) {
                let _ = run(&["ip", "link", "del", &format!("sp{pid:x}h{seq}")]);
            }
        }
    }
}
