//! Pure validation of a SessionCluster, run by the controller before it builds
//! anything. It repeats the schema's checks (a resource admitted under an older
//! schema, or created with validation off, must still fail with a clear message
//! instead of a broken reconcile) and adds those the schema cannot express:
//! the pod template, which the schema keeps opaque.

use crate::api::patterns;
use crate::api::PodTemplate;
use crate::api::{
    AffinityMode, HashSource, IngressDialect, ProviderType, RoutingSpec, SameSite,
    SessionClusterSpec, Strategy, MAX_NAME_LEN,
};
use regex::Regex;
use serde_json::Value;
use std::sync::LazyLock;

/// Name of the container sessionplane adds to frontend pods for Sticky and Replicated.
pub const AGENT_CONTAINER: &str = "sessionplane-agent";
/// Name of the keyring volume sessionplane adds to frontend pods for Client.
pub const KEYRING_VOLUME: &str = "sessionplane-keyring";
/// Largest session a cookie can carry (strategy Client).
pub const CLIENT_MAX_SESSION_BYTES: i64 = 4096;
/// Pod label keys sessionplane sets on frontend pods; a template may not set them differently.
pub const RESERVED_POD_LABELS: [&str; 4] = [
    "sessionplane.dev/cluster",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
];

/// Why a SessionCluster cannot be reconciled. Every message starts with the
/// field at fault, in the form `kubectl explain` uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// metadata.name cannot name the derived objects.
    #[error("metadata.name {reason}")]
    Name { reason: String },
    /// A number outside its range.
    #[error("{field} must be between {min} and {max}, got {value}")]
    OutOfRange {
        field: &'static str,
        value: i64,
        min: i64,
        max: i64,
    },
    /// A string that does not have the required form.
    #[error("{field} {value:?} is not {expected}")]
    Format {
        field: String,
        value: String,
        expected: &'static str,
    },
    /// A field set where it has no meaning.
    #[error("{field} is only allowed when {condition}")]
    NotAllowed {
        field: &'static str,
        condition: &'static str,
    },
    /// A field missing where it is needed.
    #[error("{field} is required when {condition}")]
    Required {
        field: &'static str,
        condition: &'static str,
    },
    /// A setting the chosen routing provider cannot express.
    #[error("{field} cannot be expressed by {provider}: {reason}")]
    Unsupported {
        field: String,
        provider: &'static str,
        reason: &'static str,
    },
    /// More copies of a partition than store nodes.
    #[error(
        "spec.store.replicationFactor ({factor}) must be at most spec.store.replicas ({replicas})"
    )]
    ReplicationFactor { factor: i32, replicas: i32 },
    /// Two settings that contradict each other.
    #[error("{field} {reason}")]
    Conflict { field: &'static str, reason: String },
    /// The pod template lacks what sessionplane needs, or collides with what it adds.
    #[error("spec.frontend.template: {reason}")]
    Template { reason: String },
    /// A field that may not change after creation.
    #[error("{field} is immutable (was {old}, now {new})")]
    Immutable {
        field: &'static str,
        old: String,
        new: String,
    },
}

impl ValidationError {
    /// Stable short label for metrics and Event reasons.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Name { .. } => "invalid_name",
            Self::OutOfRange { .. } => "out_of_range",
            Self::Format { .. } => "bad_format",
            Self::NotAllowed { .. } => "not_allowed",
            Self::Required { .. } => "required",
            Self::Unsupported { .. } => "unsupported_by_provider",
            Self::ReplicationFactor { .. } => "replication_factor",
            Self::Conflict { .. } => "conflict",
            Self::Template { .. } => "invalid_template",
            Self::Immutable { .. } => "immutable",
        }
    }
}

fn regex(pattern: &'static str) -> Regex {
    // The patterns are constants covered by unit tests; a typo fails every test.
    Regex::new(pattern).unwrap_or_else(|e| panic!("pattern {pattern}: {e}"))
}

static DNS1035: LazyLock<Regex> = LazyLock::new(|| regex("^[a-z]([-a-z0-9]*[a-z0-9])?$"));
static DNS1123_LABEL: LazyLock<Regex> = LazyLock::new(|| regex(patterns::DNS1123_LABEL));
static DNS1123_SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| regex(patterns::DNS1123_SUBDOMAIN));
static SIZE_QUANTITY: LazyLock<Regex> = LazyLock::new(|| regex(patterns::SIZE_QUANTITY));
static KEY_NAME: LazyLock<Regex> = LazyLock::new(|| regex(patterns::KEY_NAME));
static COOKIE_NAME: LazyLock<Regex> = LazyLock::new(|| regex(patterns::COOKIE_NAME));
static COOKIE_PATH: LazyLock<Regex> = LazyLock::new(|| regex(patterns::COOKIE_PATH));
static HOSTNAME: LazyLock<Regex> = LazyLock::new(|| regex(patterns::HOSTNAME));
static NGINX_HEADER: LazyLock<Regex> = LazyLock::new(|| regex("^[A-Za-z0-9-]+$"));
static NGINX_VARIABLE: LazyLock<Regex> = LazyLock::new(|| regex("^[A-Za-z0-9_]+$"));

/// Checks the SessionCluster's name: every derived object name must be valid.
pub fn validate_name(name: &str) -> Result<(), ValidationError> {
    if name.len() > MAX_NAME_LEN {
        return Err(ValidationError::Name {
            reason: format!(
                "must be at most {MAX_NAME_LEN} characters (got {}): sessionplane names objects <name>-store-headless and so on, which must fit in 63",
                name.len()
            ),
        });
    }
    if !DNS1035.is_match(name) {
        return Err(ValidationError::Name {
            reason: format!("{name:?} must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter): Services are named after it"),
        });
    }
    Ok(())
}

/// Checks a spec on its own. Returns the first problem found.
pub fn validate(spec: &SessionClusterSpec) -> Result<(), ValidationError> {
    validate_strategy(spec)?;
    validate_frontend(spec)?;
    validate_routing(&spec.routing)?;
    validate_store(spec)?;
    validate_sessions(spec)?;
    Ok(())
}

/// Checks that nothing immutable changed between two versions of a spec.
pub fn validate_update(
    old: &SessionClusterSpec,
    new: &SessionClusterSpec,
) -> Result<(), ValidationError> {
    if old.store.partitions != new.store.partitions {
        return Err(ValidationError::Immutable {
            field: "spec.store.partitions",
            old: old.store.partitions.to_string(),
            new: new.store.partitions.to_string(),
        });
    }
    let describe = |p: &Option<crate::api::PersistenceSpec>| match p {
        None => "unset".to_string(),
        Some(p) => format!(
            "size {} class {}",
            p.size,
            p.storage_class_name.as_deref().unwrap_or("(default)")
        ),
    };
    let same_volumes = match (&old.store.persistence, &new.store.persistence) {
        (None, None) => true,
        (Some(a), Some(b)) => a.size == b.size && a.storage_class_name == b.storage_class_name,
        _ => false,
    };
    if !same_volumes {
        return Err(ValidationError::Immutable {
            field: "spec.store.persistence",
            old: describe(&old.store.persistence),
            new: describe(&new.store.persistence),
        });
    }
    Ok(())
}

fn range(field: &'static str, value: i64, min: i64, max: i64) -> Result<(), ValidationError> {
    if value < min || value > max {
        return Err(ValidationError::OutOfRange {
            field,
            value,
            min,
            max,
        });
    }
    Ok(())
}

fn format(
    field: impl Into<String>,
    value: &str,
    re: &Regex,
    max_len: usize,
    expected: &'static str,
) -> Result<(), ValidationError> {
    if value.is_empty() || value.len() > max_len || !re.is_match(value) {
        return Err(ValidationError::Format {
            field: field.into(),
            value: value.to_string(),
            expected,
        });
    }
    Ok(())
}

fn validate_strategy(spec: &SessionClusterSpec) -> Result<(), ValidationError> {
    let s = spec.strategy;
    if spec.client.is_some() && s != Strategy::Client {
        return Err(ValidationError::NotAllowed {
            field: "spec.client",
            condition: "spec.strategy is Client",
        });
    }
    if spec.replicated.is_some() && s != Strategy::Replicated {
        return Err(ValidationError::NotAllowed {
            field: "spec.replicated",
            condition: "spec.strategy is Replicated",
        });
    }
    if spec.sticky.is_some() && s != Strategy::Sticky {
        return Err(ValidationError::NotAllowed {
            field: "spec.sticky",
            condition: "spec.strategy is Sticky",
        });
    }
    if s == Strategy::Sticky && spec.routing.affinity.mode == AffinityMode::None {
        return Err(ValidationError::Conflict {
            field: "spec.routing.affinity.mode",
            reason: "must be ClientIP, Cookie or Hash when spec.strategy is Sticky: sticky sessions need affinity routing".into(),
        });
    }
    if let Some(sticky) = &spec.sticky {
        range(
            "spec.sticky.replicationFactor",
            sticky.replication_factor.into(),
            1,
            2,
        )?;
        range(
            "spec.sticky.handoffGracePeriodSeconds",
            sticky.handoff_grace_period_seconds,
            15,
            3600,
        )?;
    }
    if let Some(client) = &spec.client {
        range(
            "spec.client.rotationIntervalSeconds",
            client.rotation_interval_seconds,
            300,
            7_776_000,
        )?;
        range(
            "spec.client.retainedKeys",
            client.retained_keys.into(),
            2,
            16,
        )?;
    }
    Ok(())
}

fn validate_frontend(spec: &SessionClusterSpec) -> Result<(), ValidationError> {
    let f = &spec.frontend;
    range("spec.frontend.replicas", f.replicas.into(), 0, 1000)?;
    range("spec.frontend.port", f.port.into(), 1, 65535)?;
    if let Some(name) = &f.container_name {
        format(
            "spec.frontend.containerName",
            name,
            &DNS1123_LABEL,
            63,
            "a DNS-1123 label",
        )?;
    }
    validate_template(&f.template, f.container_name.as_deref(), spec.strategy)
}

/// Paths of fields in `raw` that do not survive a round trip through the
/// typed struct: fields PodTemplateSpec does not have (typos, mostly).
fn unknown_fields(raw: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (raw, typed) {
        (Value::Object(r), Value::Object(t)) => {
            for (k, v) in r {
                let here = format!("{path}.{k}");
                match t.get(k) {
                    Some(tv) => unknown_fields(v, tv, &here, out),
                    None if v.is_null() => {}
                    None => out.push(here),
                }
            }
        }
        (Value::Array(r), Value::Array(t)) => {
            for (i, (rv, tv)) in r.iter().zip(t).enumerate() {
                unknown_fields(rv, tv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn validate_template(
    raw: &PodTemplate,
    container_name: Option<&str>,
    strategy: Strategy,
) -> Result<(), ValidationError> {
    let template = raw.typed().map_err(|e| ValidationError::Template {
        reason: format!("is not a valid PodTemplateSpec: {e}"),
    })?;
    let round_trip = serde_json::to_value(&template).unwrap_or(Value::Null);
    let mut unknown = Vec::new();
    unknown_fields(&Value::Object(raw.0.clone()), &round_trip, "", &mut unknown);
    if let Some(first) = unknown.first() {
        return Err(ValidationError::Template {
            reason: format!(
                "{} is not a field of a PodTemplateSpec{}",
                first.trim_start_matches('.'),
                if unknown.len() > 1 {
                    format!(" ({} unknown fields in all)", unknown.len())
                } else {
                    String::new()
                }
            ),
        });
    }
    let Some(pod) = &template.spec else {
        return Err(ValidationError::Template {
            reason: "spec is required".into(),
        });
    };
    if pod.containers.is_empty() {
        return Err(ValidationError::Template {
            reason: "spec.containers must have at least one container".into(),
        });
    }
    if let Some(wanted) = container_name {
        if !pod.containers.iter().any(|c| c.name == wanted) {
            return Err(ValidationError::Template {
                reason: format!("no container is named {wanted:?} (spec.frontend.containerName)"),
            });
        }
    }
    let adds_agent = matches!(strategy, Strategy::Sticky | Strategy::Replicated);
    if adds_agent && pod.containers.iter().any(|c| c.name == AGENT_CONTAINER) {
        return Err(ValidationError::Template {
            reason: format!(
                "container name {AGENT_CONTAINER:?} is reserved for the sessionplane agent sidecar"
            ),
        });
    }
    let volumes = pod.volumes.as_deref().unwrap_or_default();
    if strategy == Strategy::Client && volumes.iter().any(|v| v.name == KEYRING_VOLUME) {
        return Err(ValidationError::Template {
            reason: format!("volume name {KEYRING_VOLUME:?} is reserved for the cookie keyring"),
        });
    }
    if let Some(labels) = template.metadata.as_ref().and_then(|m| m.labels.as_ref()) {
        if let Some(key) = RESERVED_POD_LABELS
            .iter()
            .find(|k| labels.contains_key(**k))
        {
            return Err(ValidationError::Template {
                reason: format!(
                    "metadata.labels[{key:?}] is set by sessionplane; remove it from the template"
                ),
            });
        }
    }
    Ok(())
}

/// Which provider (and dialect) a RoutingSpec uses, for messages.
fn provider_label(routing: &RoutingSpec) -> &'static str {
    match routing.provider.type_ {
        ProviderType::Service => "provider Service",
        ProviderType::GatewayApi => "provider GatewayAPI",
        ProviderType::Ingress => match dialect(routing) {
            IngressDialect::Nginx => "spec.routing.provider.ingress.dialect Nginx",
            IngressDialect::Traefik => "spec.routing.provider.ingress.dialect Traefik",
            IngressDialect::HaProxy => "spec.routing.provider.ingress.dialect HAProxy",
        },
    }
}

/// The ingress dialect in force (Nginx when unset).
pub fn dialect(routing: &RoutingSpec) -> IngressDialect {
    routing
        .provider
        .ingress
        .as_ref()
        .map(|i| i.dialect)
        .unwrap_or_default()
}

/// Checks the routing section, including what each provider can express.
/// The builders rely on this: they translate only combinations accepted here.
pub fn validate_routing(routing: &RoutingSpec) -> Result<(), ValidationError> {
    validate_routing_shape(routing)?;
    validate_routing_support(routing)
}

fn validate_routing_shape(routing: &RoutingSpec) -> Result<(), ValidationError> {
    let a = &routing.affinity;
    let p = &routing.provider;
    if a.mode == AffinityMode::Hash && a.hash.is_none() {
        return Err(ValidationError::Required {
            field: "spec.routing.affinity.hash",
            condition: "spec.routing.affinity.mode is Hash (set hash.source and hash.name)",
        });
    }
    if a.hash.is_some() && a.mode != AffinityMode::Hash {
        return Err(ValidationError::NotAllowed {
            field: "spec.routing.affinity.hash",
            condition: "spec.routing.affinity.mode is Hash",
        });
    }
    if a.cookie.is_some() && a.mode != AffinityMode::Cookie {
        return Err(ValidationError::NotAllowed {
            field: "spec.routing.affinity.cookie",
            condition: "spec.routing.affinity.mode is Cookie",
        });
    }
    if let Some(t) = a.client_ip_timeout_seconds {
        if a.mode != AffinityMode::ClientIp {
            return Err(ValidationError::NotAllowed {
                field: "spec.routing.affinity.clientIPTimeoutSeconds",
                condition: "spec.routing.affinity.mode is ClientIP",
            });
        }
        range(
            "spec.routing.affinity.clientIPTimeoutSeconds",
            t.into(),
            1,
            86_400,
        )?;
    }
    if let Some(c) = &a.cookie {
        if let Some(name) = &c.name {
            format(
                "spec.routing.affinity.cookie.name",
                name,
                &COOKIE_NAME,
                64,
                "a cookie name (letters, digits, '_', '.', '-')",
            )?;
        }
        if let Some(path) = &c.path {
            format(
                "spec.routing.affinity.cookie.path",
                path,
                &COOKIE_PATH,
                1024,
                "a cookie path starting with /",
            )?;
        }
        if let Some(age) = c.max_age_seconds {
            range(
                "spec.routing.affinity.cookie.maxAgeSeconds",
                age,
                1,
                31_536_000,
            )?;
        }
        if c.same_site == Some(SameSite::None) && c.secure != Some(true) {
            return Err(ValidationError::Conflict {
                field: "spec.routing.affinity.cookie.secure",
                reason: "must be true when sameSite is None: browsers drop SameSite=None cookies without Secure".into(),
            });
        }
    }
    if let Some(h) = &a.hash {
        format(
            "spec.routing.affinity.hash.name",
            &h.name,
            &KEY_NAME,
            128,
            "a header, cookie or query parameter name (letters, digits, '_', '.', '-')",
        )?;
    }
    if let Some(host) = &routing.host {
        format("spec.routing.host", host, &HOSTNAME, 253, "a host name")?;
    }
    if let Some(secret) = &routing.tls_secret_name {
        format(
            "spec.routing.tlsSecretName",
            secret,
            &DNS1123_SUBDOMAIN,
            253,
            "a Secret name (DNS-1123 subdomain)",
        )?;
        if routing.host.is_none() {
            return Err(ValidationError::Required {
                field: "spec.routing.host",
                condition:
                    "spec.routing.tlsSecretName is set (the certificate is served for that host)",
            });
        }
    }
    match p.type_ {
        ProviderType::GatewayApi => {
            let refs = p
                .gateway_api
                .as_ref()
                .map(|g| g.parent_refs.as_slice())
                .unwrap_or_default();
            if refs.is_empty() {
                return Err(ValidationError::Required {
                    field: "spec.routing.provider.gatewayAPI.parentRefs",
                    condition: "spec.routing.provider.type is GatewayAPI",
                });
            }
            range(
                "spec.routing.provider.gatewayAPI.parentRefs (count)",
                refs.len() as i64,
                1,
                32,
            )?;
            for r in refs {
                format(
                    "spec.routing.provider.gatewayAPI.parentRefs[].name",
                    &r.name,
                    &DNS1123_SUBDOMAIN,
                    253,
                    "a Gateway name (DNS-1123 subdomain)",
                )?;
                if let Some(ns) = &r.namespace {
                    format(
                        "spec.routing.provider.gatewayAPI.parentRefs[].namespace",
                        ns,
                        &DNS1123_LABEL,
                        63,
                        "a namespace name (DNS-1123 label)",
                    )?;
                }
                if let Some(section) = &r.section_name {
                    format(
                        "spec.routing.provider.gatewayAPI.parentRefs[].sectionName",
                        section,
                        &DNS1123_SUBDOMAIN,
                        253,
                        "a listener name (DNS-1123 subdomain)",
                    )?;
                }
            }
        }
        _ if p.gateway_api.is_some() => {
            return Err(ValidationError::NotAllowed {
                field: "spec.routing.provider.gatewayAPI",
                condition: "spec.routing.provider.type is GatewayAPI",
            });
        }
        _ => {}
    }
    if p.ingress.is_some() && p.type_ != ProviderType::Ingress {
        return Err(ValidationError::NotAllowed {
            field: "spec.routing.provider.ingress",
            condition: "spec.routing.provider.type is Ingress",
        });
    }
    if let Some(class) = p.ingress.as_ref().and_then(|i| i.class_name.as_ref()) {
        format(
            "spec.routing.provider.ingress.className",
            class,
            &DNS1123_SUBDOMAIN,
            253,
            "an IngressClass name (DNS-1123 subdomain)",
        )?;
    }
    Ok(())
}

fn unsupported(
    routing: &RoutingSpec,
    field: impl Into<String>,
    reason: &'static str,
) -> Result<(), ValidationError> {
    Err(ValidationError::Unsupported {
        field: field.into(),
        provider: provider_label(routing),
        reason,
    })
}

fn validate_routing_support(routing: &RoutingSpec) -> Result<(), ValidationError> {
    let a = &routing.affinity;
    let mode_field = "spec.routing.affinity.mode";
    if a.client_ip_timeout_seconds.is_some() && routing.provider.type_ != ProviderType::Service {
        return unsupported(
            routing,
            "spec.routing.affinity.clientIPTimeoutSeconds",
            "only a Service has a ClientIP affinity timeout; hash-based affinity has none",
        );
    }
    match routing.provider.type_ {
        ProviderType::Service => {
            if matches!(a.mode, AffinityMode::Cookie | AffinityMode::Hash) {
                return unsupported(
                    routing,
                    format!("{mode_field} {}", mode_name(a.mode)),
                    "a Service supports only None and ClientIP",
                );
            }
            if routing.host.is_some() {
                return unsupported(
                    routing,
                    "spec.routing.host",
                    "a Service does not route by host; use provider Ingress or GatewayAPI",
                );
            }
            if routing.tls_secret_name.is_some() {
                return unsupported(
                    routing,
                    "spec.routing.tlsSecretName",
                    "a Service does not terminate TLS; use provider Ingress",
                );
            }
        }
        ProviderType::GatewayApi => {
            if routing.tls_secret_name.is_some() {
                return unsupported(
                    routing,
                    "spec.routing.tlsSecretName",
                    "TLS is configured on the Gateway's listener, not on an HTTPRoute",
                );
            }
            if let Some(c) = &a.cookie {
                if c.path.is_some() || c.same_site.is_some() || c.secure.is_some() {
                    return unsupported(
                        routing,
                        "spec.routing.affinity.cookie.path, sameSite and secure",
                        "HTTPRoute sessionPersistence sets only the cookie name and lifetime",
                    );
                }
            }
        }
        ProviderType::Ingress => match dialect(routing) {
            IngressDialect::Nginx => {
                if let Some(h) = &a.hash {
                    let ok = match h.source {
                        HashSource::Header => NGINX_HEADER.is_match(&h.name),
                        HashSource::Cookie | HashSource::Query => NGINX_VARIABLE.is_match(&h.name),
                    };
                    if !ok {
                        return unsupported(routing, "spec.routing.affinity.hash.name", "nginx variables allow only letters, digits and '-' in a header name ($http_...), and only letters, digits and '_' in a cookie or query name ($cookie_..., $arg_...)");
                    }
                }
            }
            IngressDialect::Traefik => {
                if matches!(a.mode, AffinityMode::ClientIp | AffinityMode::Hash) {
                    return unsupported(
                        routing,
                        format!("{mode_field} {}", mode_name(a.mode)),
                        "Traefik Ingress annotations support only cookie stickiness",
                    );
                }
            }
            IngressDialect::HaProxy => {
                if a.hash
                    .as_ref()
                    .is_some_and(|h| h.source == HashSource::Cookie)
                {
                    return unsupported(routing, "spec.routing.affinity.hash.source Cookie", "HAProxy Ingress hashes a header (hdr) or a query parameter (url_param); use mode Cookie instead");
                }
                if a.cookie
                    .as_ref()
                    .and_then(|c| c.path.as_deref())
                    .is_some_and(|p| p != "/")
                {
                    return unsupported(
                        routing,
                        "spec.routing.affinity.cookie.path",
                        "HAProxy sets its affinity cookie on /",
                    );
                }
            }
        },
    }
    Ok(())
}

fn mode_name(mode: AffinityMode) -> &'static str {
    match mode {
        AffinityMode::None => "None",
        AffinityMode::ClientIp => "ClientIP",
        AffinityMode::Cookie => "Cookie",
        AffinityMode::Hash => "Hash",
    }
}

fn validate_store(spec: &SessionClusterSpec) -> Result<(), ValidationError> {
    let s = &spec.store;
    range("spec.store.replicas", s.replicas.into(), 1, 256)?;
    range(
        "spec.store.replicationFactor",
        s.replication_factor.into(),
        1,
        5,
    )?;
    range("spec.store.partitions", s.partitions.into(), 16, 16_384)?;
    range(
        "spec.store.commandTimeoutSeconds",
        s.command_timeout_seconds.into(),
        1,
        600,
    )?;
    if s.replication_factor > s.replicas {
        return Err(ValidationError::ReplicationFactor {
            factor: s.replication_factor,
            replicas: s.replicas,
        });
    }
    if let Some(p) = &s.persistence {
        format(
            "spec.store.persistence.size",
            &p.size,
            &SIZE_QUANTITY,
            32,
            "a size quantity such as 1Gi",
        )?;
        if let Some(class) = &p.storage_class_name {
            format(
                "spec.store.persistence.storageClassName",
                class,
                &DNS1123_SUBDOMAIN,
                253,
                "a StorageClass name (DNS-1123 subdomain)",
            )?;
        }
    }
    if let Some(image) = &s.image {
        if image.is_empty() || image.len() > 512 || image.chars().any(char::is_whitespace) {
            return Err(ValidationError::Format {
                field: "spec.store.image".into(),
                value: image.clone(),
                expected: "an image reference without spaces",
            });
        }
    }
    Ok(())
}

/// The largest session the strategy allows, after defaults.
pub fn effective_max_session_bytes(spec: &SessionClusterSpec) -> i64 {
    spec.sessions
        .max_session_bytes
        .unwrap_or(match spec.strategy {
            Strategy::Client => CLIENT_MAX_SESSION_BYTES,
            _ => 65_536,
        })
}

fn validate_sessions(spec: &SessionClusterSpec) -> Result<(), ValidationError> {
    let ttl = spec.sessions.default_ttl_seconds;
    range("spec.sessions.defaultTTLSeconds", ttl, 1, 31_536_000)?;
    if let Some(max) = spec.sessions.max_session_bytes {
        range("spec.sessions.maxSessionBytes", max, 64, 16_777_216)?;
        if spec.strategy == Strategy::Client && max > CLIENT_MAX_SESSION_BYTES {
            return Err(ValidationError::Conflict {
                field: "spec.sessions.maxSessionBytes",
                reason: format!("must be at most {CLIENT_MAX_SESSION_BYTES} when spec.strategy is Client: browsers cap a cookie at about 4 KiB"),
            });
        }
    }
    if spec.strategy == Strategy::Client {
        let (interval, keys) = spec
            .client
            .as_ref()
            .map(|c| (c.rotation_interval_seconds, c.retained_keys))
            .unwrap_or((86_400, 3));
        let covered = interval.saturating_mul(i64::from(keys) - 1);
        if covered < ttl {
            return Err(ValidationError::Conflict {
                field: "spec.client.rotationIntervalSeconds",
                reason: format!("× (spec.client.retainedKeys - 1) = {covered}s must be at least spec.sessions.defaultTTLSeconds ({ttl}s): otherwise a key rotation logs out sessions that are still valid"),
            });
        }
    }
    Ok(())
}
