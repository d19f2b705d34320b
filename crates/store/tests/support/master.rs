//! The test's stand-in for the operator: the only writer of ring configurations.

use super::{http_authorized, http_from};
use serde_json::{json, Value};
use sessionplane_ring::{failover, place, plan, Assignment, Member};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const PUSH_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct Addrs {
    pub peer: String,
    pub admin: String,
}

pub struct Master {
    pub partitions: u32,
    pub rf: u32,
    pub epsilon: f64,
    pub epoch: u64,
    /// Every node the configuration lists (serving, joining or draining).
    pub members: BTreeMap<String, Addrs>,
    pub assignment: Assignment,
    /// Source address of the master's requests (None: the system's choice), so a
    /// partition test can cut the master off without cutting off the clients.
    pub source: Option<std::net::IpAddr>,
    /// The nodes' password, sent with every configuration (None: they have none).
    pub token: Option<String>,
}

/// What a migration did, for the movement assertions.
#[derive(Debug, Default, Clone)]
pub struct Moved {
    /// Replica slots copied to a new node (learners taught).
    pub replicas_moved: u64,
    pub partitions_moved: u64,
    pub took: Duration,
}

impl Master {
    pub fn new(partitions: u32, rf: u32, epsilon: f64) -> Master {
        Master {
            partitions,
            rf,
            epsilon,
            epoch: 0,
            members: BTreeMap::new(),
            assignment: Assignment::default(),
            source: None,
            token: None,
        }
    }

    fn ring_members(ids: &[String]) -> Vec<Member> {
        ids.iter().map(|id| Member::new(id.clone())).collect()
    }

    fn config(&self, replicas: &Assignment, learners: &[Vec<String>]) -> Value {
        let members: Vec<Value> = self
            .members
            .iter()
            .map(|(id, a)| json!({"id": id, "addr": a.peer}))
            .collect();
        json!({
            "epoch": self.epoch,
            "partitions": self.partitions,
            "members": members,
            "replicas": replicas.partitions,
            "learners": learners,
        })
    }

    /// Pushes a new epoch to every listed node; nodes in `down` are skipped.
    pub async fn push(&mut self, replicas: &Assignment, learners: &[Vec<String>], down: &[String]) {
        self.epoch += 1;
        let body = self.config(replicas, learners).to_string();
        let pushes = self
            .members
            .iter()
            .filter(|(id, _)| !down.contains(id))
            .map(|(id, a)| {
                let body = body.clone();
                let admin = a.admin.clone();
                let id = id.clone();
                let source = self.source;
                let token = self.token.clone();
                async move {
                    let pushed = http_authorized(
                        token.as_deref(),
                        source,
                        PUSH_TIMEOUT,
                        &admin,
                        "POST",
                        "/v1/ring",
                        Some(&body),
                    )
                    .await;
                    (id, pushed)
                }
            });
        for (id, result) in futures::future::join_all(pushes).await {
            match result {
                Ok((200, _)) => {}
                other => panic!("node {id} refused epoch {}: {other:?}", self.epoch),
            }
        }
        self.assignment = replicas.clone();
    }

    /// First placement over `ids`.
    pub async fn bootstrap(&mut self, ids: &[String]) {
        let target = place(
            None,
            &Self::ring_members(ids),
            self.partitions,
            self.rf,
            self.epsilon,
        )
        .expect("placement");
        let learners = vec![Vec::new(); self.partitions as usize];
        self.push(&target, &learners, &[]).await;
    }

    /// Moves to a placement over `ids`: learners first, then the flip once every
    /// learner reports itself caught up.
    pub async fn migrate_to(&mut self, ids: &[String], down: &[String]) -> Moved {
        let started = Instant::now();
        let target = place(
            Some(&self.assignment),
            &Self::ring_members(ids),
            self.partitions,
            self.rf,
            self.epsilon,
        )
        .expect("placement");
        let moves = plan(&self.assignment, &target);
        let current = self.assignment.clone();
        let learners: Vec<Vec<String>> = (0..self.partitions as usize)
            .map(|p| {
                let now = current.partitions.get(p).cloned().unwrap_or_default();
                target.partitions[p]
                    .iter()
                    .filter(|n| !now.contains(n))
                    .cloned()
                    .collect()
            })
            .collect();
        let moved = Moved {
            replicas_moved: learners.iter().map(|l| l.len() as u64).sum(),
            partitions_moved: learners.iter().filter(|l| !l.is_empty()).count() as u64,
            took: Duration::ZERO,
        };
        assert_eq!(
            moved.replicas_moved, moves.replicas_moved,
            "plan and learners agree"
        );
        if moved.replicas_moved > 0 {
            self.push(&current, &learners, down).await;
            self.wait_caught_up(&learners, Duration::from_secs(90))
                .await;
        }
        self.push(&target, &vec![Vec::new(); self.partitions as usize], down)
            .await;
        Moved {
            took: started.elapsed(),
            ..moved
        }
    }

    /// Waits until each learner says it holds its partitions' snapshot and tail.
    pub async fn wait_caught_up(&self, learners: &[Vec<String>], limit: Duration) {
        let mut want: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for (p, ls) in learners.iter().enumerate() {
            for l in ls {
                want.entry(l.as_str()).or_default().push(p as u32);
            }
        }
        let deadline = Instant::now() + limit;
        for (node, parts) in want {
            let admin = &self.members[node].admin;
            loop {
                let status = self.status_of(admin).await;
                let ok = status.as_ref().is_some_and(|s| {
                    s["epoch"].as_u64() == Some(self.epoch)
                        && parts.iter().all(|p| {
                            s["partitions"].as_array().is_some_and(|ps| {
                                ps.iter().any(|x| {
                                    x["partition"].as_u64() == Some(u64::from(*p))
                                        && x["caught_up"].as_bool() == Some(true)
                                })
                            })
                        })
                });
                if ok {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "learner {node} did not catch up: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Whether a node's health endpoint answers the master within `timeout` (what a
    /// liveness probe would see from where the master runs).
    pub async fn alive(&self, id: &str, timeout: Duration) -> bool {
        let admin = &self.members[id].admin;
        matches!(
            http_from(self.source, timeout, admin, "GET", "/healthz", None).await,
            Ok((200, _))
        )
    }

    pub async fn status_of(&self, admin: &str) -> Option<Value> {
        match http_from(self.source, PUSH_TIMEOUT, admin, "GET", "/v1/status", None).await {
            Ok((200, body)) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }

    pub async fn status(&self, id: &str) -> Option<Value> {
        self.status_of(&self.members[id].admin).await
    }

    /// Removes dead nodes from every replica set (promoting surviving replicas, all of
    /// which are in sync by construction) and pushes the result to the survivors.
    pub async fn fail(&mut self, dead: &[String]) {
        let outcome = failover(&self.assignment, dead, |_, _| true);
        assert!(
            outcome.unavailable.is_empty(),
            "partitions lost every replica: {:?}",
            outcome.unavailable
        );
        let learners = vec![Vec::new(); self.partitions as usize];
        self.push(&outcome.assignment, &learners, dead).await;
        for d in dead {
            self.members.remove(d);
        }
    }

    /// Whether a node's own status says it holds nothing and serves no partition.
    pub async fn drained(&self, id: &str) -> bool {
        self.status(id).await.is_some_and(|s| {
            s["partitions_held"].as_u64() == Some(0)
                && s["roles"]["primary"].as_u64() == Some(0)
                && s["roles"]["replica"].as_u64() == Some(0)
                && s["roles"]["learner"].as_u64() == Some(0)
        })
    }
}
