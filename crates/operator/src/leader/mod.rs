//! Leader election on a `coordination.k8s.io/v1` Lease, so that two replicas of the
//! operator can run and only one reconciles.
//!
//! Every write is a `replace` carrying the `resourceVersion` that was read, so two
//! candidates racing for the same Lease cannot both win: the loser gets a 409 Conflict.

pub mod decision;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

use decision::{decide, leadership_lost, Decision, LeaseRecord};

/// What this replica currently knows about leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// No answer from the API server yet.
    Unknown,
    /// This replica holds the Lease and may reconcile.
    Leader,
    /// Another replica holds the Lease (or it is being contended).
    Standby { holder: Option<String> },
}

impl Leadership {
    pub fn is_leader(&self) -> bool {
        matches!(self, Leadership::Leader)
    }
}

/// Errors of one election round; every one of them just means "not leader this round".
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error("reading Lease: {0}")]
    Read(#[source] kube::Error),
    #[error("writing Lease: {0}")]
    Write(#[source] kube::Error),
    #[error("the election round did not finish within {0:?}")]
    Timeout(Duration),
}

impl ElectionError {
    pub fn label(&self) -> &'static str {
        match self {
            ElectionError::Read(_) => "lease_read",
            ElectionError::Write(_) => "lease_write",
            ElectionError::Timeout(_) => "round_timeout",
        }
    }
}

/// Timings of the election, as in client-go's defaults scaled for a small operator.
#[derive(Debug, Clone)]
pub struct Timings {
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the leader renews.
    pub renew_period: Duration,
    /// A leader that could not renew for this long stops reconciling.
    pub renew_deadline: Duration,
    /// How often a standby retries.
    pub retry_period: Duration,
}

impl Timings {
    /// How long one election round may take. A round whose API calls hang (a connection
    /// to the API server that died without a reset waits minutes for its read timeout)
    /// would otherwise keep a leader leading unrenewed while a standby takes the expired
    /// Lease: two leaders. Cut off in time, it counts as a failed round, and a leader
    /// steps down by the renew deadline, before the Lease can expire.
    pub fn round_timeout(&self) -> Duration {
        self.renew_deadline
            .saturating_sub(self.renew_period)
            .max(Duration::from_millis(100))
    }
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            lease_duration: Duration::from_secs(15),
            renew_period: Duration::from_secs(5),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Acquires and renews one Lease for one identity.
pub struct LeaderElector {
    api: Api<Lease>,
    lease_name: String,
    identity: String,
    timings: Timings,
    /// The last record seen and when it was first seen in that form.
    observed: Option<(LeaseRecord, Option<MicroTime>, Instant)>,
    last_renew: Option<Instant>,
}

impl LeaderElector {
    pub fn new(api: Api<Lease>, lease_name: &str, identity: &str, timings: Timings) -> Self {
        LeaderElector {
            api,
            lease_name: lease_name.to_owned(),
            identity: identity.to_owned(),
            timings,
            observed: None,
            last_renew: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Runs election rounds until `shutdown` turns true, publishing the state on `state`;
    /// releases the Lease on the way out if held.
    pub async fn run(
        mut self,
        state: watch::Sender<Leadership>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let now = Instant::now();
            let limit = self.timings.round_timeout();
            let round = tokio::time::timeout(limit, self.round(now))
                .await
                .unwrap_or(Err(ElectionError::Timeout(limit)));
            let next = match round {
                Ok(l) => l,
                Err(err) => {
                    tracing::warn!(error = %err, label = err.label(), "leader election round failed");
                    let now = Instant::now();
                    match self.last_renew {
                        Some(t) if !leadership_lost(now - t, self.timings.renew_deadline) => {
                            Leadership::Leader
                        }
                        Some(_) => {
                            self.last_renew = None;
                            Leadership::Standby { holder: None }
                        }
                        None => state.borrow().clone(),
                    }
                }
            };
            let was = state.borrow().clone();
            if was != next {
                tracing::info!(identity = %self.identity, from = ?was, to = ?next, "leadership changed");
                state.send_replace(next.clone());
            }
            let wait = if next.is_leader() {
                self.timings.renew_period
            } else {
                self.timings.retry_period
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
        if state.borrow().is_leader() {
            // Stop claiming leadership before releasing, so nothing reconciles in between.
            state.send_replace(Leadership::Standby { holder: None });
            if let Err(err) = self.release().await {
                tracing::warn!(error = %err, "releasing the Lease failed; it expires on its own");
            }
        }
    }

    /// One election round: read the Lease, decide, write if needed.
    pub async fn round(&mut self, now: Instant) -> Result<Leadership, ElectionError> {
        let lease = self
            .api
            .get_opt(&self.lease_name)
            .await
            .map_err(ElectionError::Read)?;
        let record = lease.as_ref().map(record_of);
        let unchanged_for = self.observe(lease.as_ref(), now);
        match decide(record.as_ref(), &self.identity, unchanged_for) {
            Decision::Create => {
                let fresh = self.lease_for_us(ObjectMeta::default(), 0);
                match self.api.create(&PostParams::default(), &fresh).await {
                    Ok(_) => self.won(now),
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        Ok(Leadership::Standby { holder: None })
                    }
                    Err(e) => Err(ElectionError::Write(e)),
                }
            }
            Decision::Renew => {
                let Some(mut lease) = lease else {
                    return Ok(Leadership::Unknown);
                };
                let spec = lease.spec.get_or_insert_with(Default::default);
                spec.renew_time = Some(MicroTime(Timestamp::now()));
                spec.lease_duration_seconds = Some(secs(self.timings.lease_duration));
                self.replace(&lease, now).await
            }
            Decision::TakeOver { transitions } => {
                let Some(lease) = lease else {
                    return Ok(Leadership::Unknown);
                };
                let taken = self.lease_for_us(lease.metadata, transitions);
                self.replace(&taken, now).await
            }
            Decision::Follow { holder } => {
                self.last_renew = None;
                Ok(Leadership::Standby {
                    holder: Some(holder),
                })
            }
        }
    }

    fn won(&mut self, now: Instant) -> Result<Leadership, ElectionError> {
        self.last_renew = Some(now);
        Ok(Leadership::Leader)
    }

    async fn replace(&mut self, lease: &Lease, now: Instant) -> Result<Leadership, ElectionError> {
        match self
            .api
            .replace(&self.lease_name, &PostParams::default(), lease)
            .await
        {
            Ok(_) => self.won(now),
            // Someone else wrote first: they win this round.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Leadership::Standby { holder: None }),
            Err(e) => Err(ElectionError::Write(e)),
        }
    }

    fn lease_for_us(&self, mut metadata: ObjectMeta, transitions: i32) -> Lease {
        let now = MicroTime(Timestamp::now());
        metadata.name = Some(self.lease_name.clone());
        Lease {
            metadata,
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(secs(self.timings.lease_duration)),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(transitions),
                ..Default::default()
            }),
        }
    }

    /// Remembers when the Lease record last changed; returns how long it has been unchanged.
    fn observe(&mut self, lease: Option<&Lease>, now: Instant) -> Duration {
        let Some(lease) = lease else {
            self.observed = None;
            return Duration::ZERO;
        };
        let record = record_of(lease);
        let renew = lease.spec.as_ref().and_then(|s| s.renew_time.clone());
        match &self.observed {
            Some((r, t, since)) if *r == record && *t == renew => now - *since,
            _ => {
                self.observed = Some((record, renew, now));
                Duration::ZERO
            }
        }
    }

    /// Gives the Lease up so a standby takes over without waiting for expiry.
    async fn release(&mut self) -> Result<(), ElectionError> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.lease_name)
            .await
            .map_err(ElectionError::Read)?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api
            .replace(&self.lease_name, &PostParams::default(), &lease)
            .await
            .map_err(ElectionError::Write)?;
        self.last_renew = None;
        tracing::info!(identity = %self.identity, "released the Lease");
        Ok(())
    }
}

fn record_of(lease: &Lease) -> LeaseRecord {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaseRecord {
        holder: spec.holder_identity,
        duration: Duration::from_secs(spec.lease_duration_seconds.unwrap_or(15).max(1) as u64),
        transitions: spec.lease_transitions.unwrap_or(0),
    }
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hung_round_is_cut_off_before_a_standby_may_take_the_lease() {
        let t = Timings::default();
        // Last renewal at 0; the next round starts a renew period later and is cut off
        // at most round_timeout after that: by then the leader has stepped down
        // (leadership_lost at the renew deadline), and the Lease is still valid.
        let cut_off = t.renew_period + t.round_timeout();
        assert!(
            cut_off <= t.renew_deadline,
            "{cut_off:?} > {:?}",
            t.renew_deadline
        );
        assert!(leadership_lost(cut_off, t.renew_deadline));
        assert!(t.renew_deadline < t.lease_duration);
        assert!(
            t.round_timeout() >= Duration::from_secs(1),
            "room for a slow API server"
        );
    }
}
