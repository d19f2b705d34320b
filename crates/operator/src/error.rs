//! The errors of the reconcile loop, each with a stable label for metrics and events.

use std::time::Duration;

/// Everything a reconcile of one SessionCluster can fail on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object has no namespace (SessionCluster is namespaced; the watch should never yield one).
    #[error("SessionCluster {0} has no namespace")]
    MissingNamespace(String),

    /// The builders could not produce the desired objects.
    #[error("building desired objects: {0}")]
    Build(#[from] crate::build::BuildError),

    /// Reading an existing Secret (store password, cookie keyring) failed.
    #[error("reading Secret {name}: {source}")]
    ReadSecret {
        name: String,
        #[source]
        source: kube::Error,
    },

    /// A Secret exists but its content is not what the operator wrote.
    #[error("Secret {name} is malformed: {reason}")]
    MalformedSecret { name: String, reason: String },

    /// Looking up whether a kind is served by the API server failed.
    #[error("discovering {kind}: {source}")]
    Discovery {
        kind: String,
        #[source]
        source: kube::Error,
    },

    /// Server-side apply of an owned object failed.
    #[error("applying {kind} {name}: {source}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },

    /// Listing or deleting an owned object that is no longer desired failed.
    #[error("pruning {kind}: {source}")]
    Prune {
        kind: String,
        #[source]
        source: kube::Error,
    },

    /// Writing the status subresource failed.
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),

    /// Reading, deciding or persisting the store's ring configuration failed.
    #[error("ring: {0}")]
    Ring(#[from] crate::ring_driver::RingError),

    /// A desired object could not be serialized (a bug in the builders).
    #[error("serializing {what}: {source}")]
    Serialize {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// Stable short label, used as the `error` label of the metrics and as the Event reason suffix.
    pub fn label(&self) -> &'static str {
        match self {
            Error::MissingNamespace(_) => "missing_namespace",
            Error::Build(_) => "build",
            Error::ReadSecret { .. } => "read_secret",
            Error::MalformedSecret { .. } => "malformed_secret",
            Error::Discovery { .. } => "discovery",
            Error::Apply { .. } => "apply",
            Error::Prune { .. } => "prune",
            Error::Status(_) => "status",
            Error::Serialize { .. } => "serialize",
            Error::Ring(_) => "ring",
        }
    }

    /// The PascalCase reason used on Events and conditions.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::MissingNamespace(_) => "MissingNamespace",
            Error::Build(_) => "BuildFailed",
            Error::ReadSecret { .. } => "ReadSecretFailed",
            Error::MalformedSecret { .. } => "MalformedSecret",
            Error::Discovery { .. } => "DiscoveryFailed",
            Error::Apply { .. } => "ApplyFailed",
            Error::Prune { .. } => "PruneFailed",
            Error::Status(_) => "StatusFailed",
            Error::Serialize { .. } => "SerializeFailed",
            Error::Ring(_) => "RingFailed",
        }
    }
}

/// Exponential backoff per object: 1s, 2s, 4s, ... capped at five minutes.
///
/// `failures` counts consecutive failures of the same object, starting at 1.
pub fn backoff_delay(failures: u32) -> Duration {
    const BASE_MS: u64 = 1_000;
    const CAP: Duration = Duration::from_secs(300);
    let exp = failures.saturating_sub(1).min(16);
    let delay = Duration::from_millis(BASE_MS.saturating_mul(1u64 << exp));
    delay.min(CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error() -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("boom", "Conflict").with_code(409),
        ))
    }

    #[test]
    fn every_variant_has_a_distinct_label_and_reason() {
        let all = vec![
            Error::MissingNamespace("a".into()),
            Error::Build(crate::build::BuildError::MissingMetadata {
                field: "metadata.uid",
            }),
            Error::ReadSecret {
                name: "s".into(),
                source: api_error(),
            },
            Error::MalformedSecret {
                name: "s".into(),
                reason: "r".into(),
            },
            Error::Discovery {
                kind: "k".into(),
                source: api_error(),
            },
            Error::Apply {
                kind: "Deployment".into(),
                name: "n".into(),
                source: api_error(),
            },
            Error::Prune {
                kind: "k".into(),
                source: api_error(),
            },
            Error::Status(api_error()),
            Error::Serialize {
                what: "w".into(),
                source: serde_json::from_str::<u8>("x").unwrap_err(),
            },
        ];
        let labels: std::collections::BTreeSet<_> = all.iter().map(Error::label).collect();
        let reasons: std::collections::BTreeSet<_> = all.iter().map(Error::reason).collect();
        assert_eq!(labels.len(), all.len());
        assert_eq!(reasons.len(), all.len());
        for l in labels {
            assert!(l.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{l}");
        }
    }

    #[test]
    fn apply_error_names_the_object() {
        let e = Error::Apply {
            kind: "Deployment".into(),
            name: "web".into(),
            source: api_error(),
        };
        let text = e.to_string();
        assert!(text.contains("Deployment web"), "{text}");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_delay(1), Duration::from_secs(1));
        assert_eq!(backoff_delay(2), Duration::from_secs(2));
        assert_eq!(backoff_delay(5), Duration::from_secs(16));
        assert_eq!(backoff_delay(9), Duration::from_secs(256));
        assert_eq!(backoff_delay(10), Duration::from_secs(300));
        assert_eq!(backoff_delay(u32::MAX), Duration::from_secs(300));
        assert_eq!(backoff_delay(0), Duration::from_secs(1));
    }
}
