//! INFO: the sections clients and tools read, in Redis's `field:value` format.

use super::shared::Shared;
use crate::backend::BackendStats;
use std::fmt::Write;
use std::sync::atomic::Ordering;

/// The Redis version clients see; libraries gate features on it.
pub const REDIS_VERSION: &str = "7.4.0";

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "keyspace",
];

/// Renders the requested sections (`default`, `all`, `everything` or names).
pub(crate) fn render(args: &[Vec<u8>], shared: &Shared, stats: &BackendStats) -> String {
    let mut wanted: Vec<&str> = Vec::new();
    if args.is_empty() {
        wanted.extend(DEFAULT_SECTIONS);
    }
    for arg in args {
        let name = String::from_utf8_lossy(arg).to_ascii_lowercase();
        match name.as_str() {
            "default" | "all" | "everything" => wanted.extend(DEFAULT_SECTIONS),
            other => {
                if let Some(s) = DEFAULT_SECTIONS.iter().find(|s| **s == other) {
                    wanted.push(s);
                }
            }
        }
    }
    let mut out = String::new();
    for section in DEFAULT_SECTIONS.iter().filter(|s| wanted.contains(s)) {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        match *section {
            "server" => server(&mut out, shared),
            "clients" => clients(&mut out, shared),
            "memory" => memory(&mut out, stats),
            "persistence" => persistence(&mut out),
            "stats" => stats_section(&mut out, shared),
            "replication" => replication(&mut out, stats),
            "keyspace" => keyspace(&mut out, stats),
            _ => {}
        }
    }
    out
}

fn field(out: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = write!(out, "{name}:{value}\r\n");
}

fn server(out: &mut String, shared: &Shared) {
    let uptime = shared.started.elapsed().as_secs();
    out.push_str("# Server\r\n");
    field(out, "redis_version", REDIS_VERSION);
    field(out, "sessionplane_version", env!("CARGO_PKG_VERSION"));
    field(out, "redis_mode", "standalone");
    field(out, "os", std::env::consts::OS);
    field(out, "arch_bits", usize::BITS);
    field(out, "multiplexing_api", "tokio");
    field(out, "process_id", std::process::id());
    field(out, "run_id", &shared.run_id);
    field(out, "tcp_port", shared.config.listen.port());
    field(out, "uptime_in_seconds", uptime);
    field(out, "uptime_in_days", uptime / 86_400);
}

fn clients(out: &mut String, shared: &Shared) {
    out.push_str("# Clients\r\n");
    field(
        out,
        "connected_clients",
        shared.clients.load(Ordering::Relaxed),
    );
    field(out, "maxclients", shared.config.max_clients);
    field(out, "blocked_clients", 0);
}

/// Resident set size from /proc (Linux); 0 elsewhere.
pub fn rss_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "K", "M", "G"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2}{}", UNITS[unit])
}

fn memory(out: &mut String, stats: &BackendStats) {
    out.push_str("# Memory\r\n");
    field(out, "used_memory", stats.used_memory_bytes);
    field(out, "used_memory_human", human(stats.used_memory_bytes));
    let rss = rss_bytes();
    field(out, "used_memory_rss", rss);
    field(out, "used_memory_rss_human", human(rss));
    field(out, "maxmemory", 0);
    field(out, "maxmemory_policy", "noeviction");
}

fn persistence(out: &mut String) {
    out.push_str("# Persistence\r\n");
    field(out, "loading", 0);
    field(out, "async_loading", 0);
    field(out, "rdb_changes_since_last_save", 0);
    field(out, "rdb_bgsave_in_progress", 0);
    field(out, "aof_enabled", 0);
    field(out, "aof_rewrite_in_progress", 0);
}

fn stats_section(out: &mut String, shared: &Shared) {
    out.push_str("# Stats\r\n");
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    field(
        out,
        "total_connections_received",
        load(&shared.connections_received),
    );
    field(
        out,
        "total_commands_processed",
        load(&shared.commands_processed),
    );
    field(
        out,
        "rejected_connections",
        load(&shared.rejected_connections),
    );
    field(out, "total_error_replies", 0);
    field(
        out,
        "sessionplane_protocol_errors",
        load(&shared.protocol_errors),
    );
}

fn replication(out: &mut String, stats: &BackendStats) {
    out.push_str("# Replication\r\n");
    field(
        out,
        "role",
        if stats.role.is_empty() {
            "master"
        } else {
            stats.role
        },
    );
    field(out, "connected_slaves", 0);
    field(out, "sessionplane_epoch", stats.epoch);
    field(
        out,
        "sessionplane_partitions_primary",
        stats.partitions_primary,
    );
    field(
        out,
        "sessionplane_partitions_replica",
        stats.partitions_replica,
    );
}

fn keyspace(out: &mut String, stats: &BackendStats) {
    out.push_str("# Keyspace\r\n");
    if stats.keys > 0 {
        let _ = write!(
            out,
            "db0:keys={},expires={},avg_ttl=0\r\n",
            stats.keys, stats.expires
        );
    }
}
