//! `spec.routing`: the affinity mode and the provider that implements it.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How requests reach the frontends. A mode the chosen provider cannot
/// express is rejected, never silently dropped.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[x_kube(
    validation = Rule::new("self.provider.type != 'Service' || self.affinity.mode == 'None' || self.affinity.mode == 'ClientIP'").message("spec.routing.affinity.mode Cookie and Hash cannot be expressed by provider Service: a Service supports only None and ClientIP"),
    validation = Rule::new("!has(self.affinity.clientIPTimeoutSeconds) || self.provider.type == 'Service'").message("spec.routing.affinity.clientIPTimeoutSeconds is only supported by provider Service: hash-based ClientIP affinity has no timeout"),
    validation = Rule::new("!has(self.host) || self.provider.type != 'Service'").message("spec.routing.host needs provider Ingress or GatewayAPI: a Service does not route by host"),
    validation = Rule::new("!has(self.tlsSecretName) || has(self.host)").message("spec.routing.tlsSecretName requires spec.routing.host: the certificate is served for that host"),
    validation = Rule::new("!has(self.tlsSecretName) || self.provider.type == 'Ingress'").message("spec.routing.tlsSecretName is only supported by provider Ingress: with GatewayAPI, TLS is set on the Gateway's listener, and a Service does not terminate TLS"),
    validation = Rule::new("self.provider.type != 'Ingress' || !has(self.provider.ingress) || self.provider.ingress.dialect != 'Traefik' || self.affinity.mode == 'None' || self.affinity.mode == 'Cookie'").message("spec.routing.affinity.mode ClientIP and Hash cannot be expressed by spec.routing.provider.ingress.dialect Traefik: Traefik Ingress annotations support only cookie stickiness"),
    validation = Rule::new("self.provider.type != 'Ingress' || !has(self.provider.ingress) || self.provider.ingress.dialect != 'HAProxy' || !has(self.affinity.hash) || self.affinity.hash.source != 'Cookie'").message("spec.routing.affinity.hash.source Cookie cannot be expressed by spec.routing.provider.ingress.dialect HAProxy: use mode Cookie, or hash on a Header or Query key"),
    validation = Rule::new("self.provider.type != 'Ingress' || !has(self.provider.ingress) || self.provider.ingress.dialect != 'HAProxy' || !has(self.affinity.cookie) || !has(self.affinity.cookie.path) || self.affinity.cookie.path == '/'").message("spec.routing.affinity.cookie.path other than / cannot be expressed by spec.routing.provider.ingress.dialect HAProxy: HAProxy sets the affinity cookie on /"),
    validation = Rule::new("self.provider.type != 'Ingress' || (has(self.provider.ingress) && self.provider.ingress.dialect != 'Nginx') || !has(self.affinity.hash) || (self.affinity.hash.source == 'Header' ? self.affinity.hash.name.matches('^[A-Za-z0-9-]+$') : self.affinity.hash.name.matches('^[A-Za-z0-9_]+$'))").message("spec.routing.affinity.hash.name cannot be expressed by spec.routing.provider.ingress.dialect Nginx: nginx variables allow only letters, digits and '-' in a header name ($http_...), and only letters, digits and '_' in a cookie or query name ($cookie_..., $arg_...)"),
    validation = Rule::new("self.provider.type != 'GatewayAPI' || !has(self.affinity.cookie) || (!has(self.affinity.cookie.path) && !has(self.affinity.cookie.sameSite) && !has(self.affinity.cookie.secure))").message("spec.routing.affinity.cookie.path, sameSite and secure cannot be expressed by provider GatewayAPI: HTTPRoute sessionPersistence sets only the cookie name and lifetime"),
)]
#[serde(rename_all = "camelCase")]
pub struct RoutingSpec {
    /// Which requests go to the same frontend pod.
    #[serde(default)]
    pub affinity: AffinitySpec,

    /// What implements the routing: a Gateway API HTTPRoute, an Ingress, or only a Service.
    #[serde(default)]
    pub provider: ProviderSpec,

    /// Host name the HTTPRoute or Ingress matches (for example shop.example.com). Empty matches every host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = super::patterns::HOSTNAME))]
    pub host: Option<String>,

    /// Name of a kubernetes.io/tls Secret in the same namespace; the Ingress terminates TLS for host with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = super::patterns::DNS1123_SUBDOMAIN))]
    pub tls_secret_name: Option<String>,

    /// Extra annotations put on the routing object (HTTPRoute, Ingress, or the
    /// frontend Service with provider Service). A key sessionplane sets itself
    /// for the chosen affinity is refused rather than overwritten.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Which requests go to the same frontend pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[x_kube(
    validation = Rule::new("self.mode != 'Hash' || has(self.hash)").message("spec.routing.affinity.hash is required when mode is Hash: set hash.source and hash.name"),
    validation = Rule::new("!has(self.hash) || self.mode == 'Hash'").message("spec.routing.affinity.hash is only allowed when mode is Hash"),
    validation = Rule::new("!has(self.cookie) || self.mode == 'Cookie'").message("spec.routing.affinity.cookie is only allowed when mode is Cookie"),
    validation = Rule::new("!has(self.clientIPTimeoutSeconds) || self.mode == 'ClientIP'").message("spec.routing.affinity.clientIPTimeoutSeconds is only allowed when mode is ClientIP"),
)]
#[serde(rename_all = "camelCase")]
pub struct AffinitySpec {
    /// None: any pod. ClientIP: by the client's address. Cookie: the proxy sets
    /// an affinity cookie. Hash: by consistent hash of one request key (hash).
    #[serde(default)]
    pub mode: AffinityMode,

    /// Affinity cookie settings, for mode Cookie. Unset fields take the
    /// provider's defaults; name defaults to "sp-affinity".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<CookieSpec>,

    /// The request key to hash, required for mode Hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<HashSpec>,

    /// How long a client IP stays bound to a pod, for mode ClientIP with
    /// provider Service (the Service's sessionAffinityConfig). Default 10800.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "clientIPTimeoutSeconds"
    )]
    #[schemars(range(min = 1, max = 86400))]
    pub client_ip_timeout_seconds: Option<i32>,
}

/// The affinity mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
pub enum AffinityMode {
    /// No affinity: any frontend pod may serve any request.
    #[default]
    None,
    /// Requests from one client address go to the same pod.
    #[serde(rename = "ClientIP")]
    ClientIp,
    /// The proxy sets a cookie naming the pod.
    Cookie,
    /// Consistent hash of a header, cookie or query parameter.
    Hash,
}

/// The affinity cookie, for mode Cookie.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[x_kube(
    validation = Rule::new("!has(self.sameSite) || self.sameSite != 'None' || (has(self.secure) && self.secure)").message("spec.routing.affinity.cookie.secure must be true when sameSite is None: browsers drop SameSite=None cookies without Secure"),
)]
#[serde(rename_all = "camelCase")]
pub struct CookieSpec {
    /// Cookie name. Default "sp-affinity".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = super::patterns::COOKIE_NAME))]
    pub name: Option<String>,

    /// Cookie lifetime in seconds (Max-Age). Unset: a browser-session cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 31536000))]
    pub max_age_seconds: Option<i64>,

    /// Cookie Path attribute. Default "/".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = super::patterns::COOKIE_PATH))]
    pub path: Option<String>,

    /// Cookie SameSite attribute: Lax, Strict or None (None requires secure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_site: Option<SameSite>,

    /// Whether the cookie carries the Secure attribute (sent over HTTPS only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
}

/// Cookie SameSite attribute: Lax (sent on top-level navigations from other
/// sites), Strict (never on cross-site requests) or None (always; requires secure).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum SameSite {
    /// Sent on top-level navigations from other sites.
    Lax,
    /// Never sent on cross-site requests.
    Strict,
    /// Sent on every request; requires secure.
    None,
}

/// The request key whose hash picks the pod, for mode Hash.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HashSpec {
    /// Where the key is: a request Header, a Cookie or a Query parameter.
    pub source: HashSource,

    /// Name of the header, cookie or query parameter (for example X-User-Id).
    #[schemars(length(min = 1, max = 128), regex(pattern = super::patterns::KEY_NAME))]
    pub name: String,
}

/// Where the hashed key is read from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum HashSource {
    /// A request header.
    Header,
    /// A request cookie.
    Cookie,
    /// A URL query parameter.
    Query,
}

/// What implements the routing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[x_kube(
    validation = Rule::new("self.type != 'GatewayAPI' || has(self.gatewayAPI)").message("spec.routing.provider.gatewayAPI.parentRefs is required when type is GatewayAPI"),
    validation = Rule::new("!has(self.gatewayAPI) || self.type == 'GatewayAPI'").message("spec.routing.provider.gatewayAPI is only allowed when type is GatewayAPI"),
    validation = Rule::new("!has(self.ingress) || self.type == 'Ingress'").message("spec.routing.provider.ingress (className, dialect) is only allowed when type is Ingress"),
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSpec {
    /// GatewayAPI: an HTTPRoute attached to your Gateway (plus an Envoy Gateway
    /// BackendTrafficPolicy for ClientIP and Hash). Ingress: a networking.k8s.io/v1
    /// Ingress with the dialect's annotations. Service (default): only the
    /// frontend Service, for None and ClientIP.
    #[serde(default, rename = "type")]
    pub type_: ProviderType,

    /// Gateway API settings, required when type is GatewayAPI.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "gatewayAPI"
    )]
    pub gateway_api: Option<GatewayApiSpec>,

    /// Ingress settings, only with type Ingress. Unset: dialect Nginx, the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
}

/// The routing provider.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
pub enum ProviderType {
    /// Gateway API HTTPRoute (gateway.networking.k8s.io/v1).
    #[serde(rename = "GatewayAPI")]
    GatewayApi,
    /// networking.k8s.io/v1 Ingress.
    Ingress,
    /// Only the frontend Service (sessionAffinity).
    #[default]
    Service,
}

/// Gateway API settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayApiSpec {
    /// The Gateways (or their listeners) the HTTPRoute attaches to.
    #[schemars(length(min = 1, max = 32))]
    pub parent_refs: Vec<ParentRef>,
}

/// A Gateway the HTTPRoute attaches to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    /// Name of the Gateway.
    #[schemars(length(min = 1, max = 253), regex(pattern = super::patterns::DNS1123_SUBDOMAIN))]
    pub name: String,

    /// Namespace of the Gateway. Default: the SessionCluster's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = super::patterns::DNS1123_LABEL))]
    pub namespace: Option<String>,

    /// Name of one listener of the Gateway. Default: every listener that allows the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = super::patterns::DNS1123_SUBDOMAIN))]
    pub section_name: Option<String>,
}

/// Ingress settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// spec.ingressClassName of the Ingress. Unset: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = super::patterns::DNS1123_SUBDOMAIN))]
    pub class_name: Option<String>,

    /// Which controller's annotations express the affinity: Nginx (ingress-nginx,
    /// default), Traefik or HAProxy (HAProxy Ingress).
    #[serde(default)]
    pub dialect: IngressDialect,
}

/// The annotation set an Ingress controller reads.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
pub enum IngressDialect {
    /// ingress-nginx (nginx.ingress.kubernetes.io/*): every mode.
    #[default]
    Nginx,
    /// Traefik (traefik.ingress.kubernetes.io/*): None and Cookie.
    Traefik,
    /// HAProxy Ingress (haproxy-ingress.github.io/*): None, ClientIP, Cookie, Hash on a header or query key.
    #[serde(rename = "HAProxy")]
    HaProxy,
}
