//! Names of the owned objects, derived from the SessionCluster's name.
//! `validate_name` caps that name at 40 characters, so every name here fits
//! in 63 (a DNS-1035 label, as Services require).

/// The frontend Deployment, its Service, and the routing objects.
pub fn frontend(cluster: &str) -> String {
    format!("{cluster}-frontend")
}

/// The store StatefulSet, its PodDisruptionBudget, and its client Service.
pub fn store(cluster: &str) -> String {
    format!("{cluster}-store")
}

/// The headless Service giving each store pod a stable DNS name.
pub fn store_headless(cluster: &str) -> String {
    format!("{cluster}-store-headless")
}

/// The Secret with the store password.
pub fn store_auth(cluster: &str) -> String {
    format!("{cluster}-store-auth")
}

/// The Secret with the cookie keyring (strategy Client).
pub fn keyring(cluster: &str) -> String {
    format!("{cluster}-keyring")
}

/// The ConfigMap with the session settings.
pub fn config(cluster: &str) -> String {
    format!("{cluster}-config")
}

/// The headless Service for agent peer discovery (Sticky, Replicated).
pub fn peers(cluster: &str) -> String {
    format!("{cluster}-peers")
}
