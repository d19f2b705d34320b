//! Regular expressions shared by the schema (`#[schemars(regex)]`) and `crate::validate`.

/// A DNS-1123 label: the name of a container, a namespace or a Service port.
pub const DNS1123_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A DNS-1123 subdomain: most object names (Secrets, Gateways, StorageClasses).
pub const DNS1123_SUBDOMAIN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A Kubernetes quantity without sign, as a volume size: `1Gi`, `500M`, `2.5Gi`.
pub const SIZE_QUANTITY: &str = "^([0-9]+(\\.[0-9]+)?)([KMGTPE]i|[kMGTPE])?$";
/// A header, cookie or query-parameter name that every provider can quote
/// (letters, digits, `_`, `-` and `.`).
pub const KEY_NAME: &str = "^[A-Za-z0-9][A-Za-z0-9_.-]*$";
/// An affinity cookie name: an RFC 6265 token restricted to characters that
/// no proxy escapes differently.
pub const COOKIE_NAME: &str = "^[A-Za-z0-9_.-]+$";
/// A cookie path: starts with `/`, no spaces, quotes or semicolons.
pub const COOKIE_PATH: &str = "^/[^;\\s\"]*$";
/// A hostname, optionally with one leading wildcard label.
pub const HOSTNAME: &str =
    "^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
