//! Loading the TLS certificate and key (PEM) into a rustls server configuration.

use super::config::ConfigError;
use std::path::Path;
use std::sync::Arc;

pub fn load(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| ConfigError::Read {
            path: cert.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(ConfigError::NoCertificate(cert.to_path_buf()));
    }
    let private_key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|source| ConfigError::Read {
            path: key.to_path_buf(),
            source,
        })?
        .ok_or_else(|| ConfigError::NoKey(key.to_path_buf()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, private_key)?;
    Ok(Arc::new(config))
}
