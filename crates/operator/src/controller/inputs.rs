//! The build inputs that must survive reconciles: the store password and the cookie
//! keyring. Read from the Secrets the operator created earlier; generated (randomly,
//! once) only when the Secret does not exist yet. The keyring then moves one rotation
//! step when one is due (`crate::keyring`); the password never changes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};
use rand::distr::{Alphanumeric, SampleString};
use rand::RngCore;

use crate::api::{SessionCluster, Strategy};
use crate::build::{names, BuildInputs, PASSWORD_KEY};
use crate::error::Error;
use crate::keyring::{Keyring, Policy, Rotation, KEY_BYTES};

/// Length of a generated store password (alphanumeric: URL-safe for REDIS_URL).
pub const PASSWORD_LEN: usize = 32;

/// The build inputs and, for strategy Client, what the keyring did and when it is due next.
pub struct Inputs {
    pub build: BuildInputs,
    pub keyring: Option<KeyringStep>,
}

pub struct KeyringStep {
    pub rotation: Option<Rotation>,
    /// Unix seconds of the next rotation step.
    pub next_due: i64,
}

/// Reads the existing secrets of `sc`, generating what is missing; `now` (Unix seconds)
/// and `propagation` (seconds a staged key waits) drive the keyring's rotation.
pub async fn read_or_generate(
    client: &Client,
    sc: &SessionCluster,
    default_image: &str,
    now: i64,
    propagation: i64,
) -> Result<Inputs, Error> {
    let ns = sc.namespace().unwrap_or_default();
    let name = sc.name_any();
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);

    let store_password = if sc.spec.strategy == Strategy::Client {
        String::new()
    } else {
        let secret_name = names::store_auth(&name);
        match read(&api, &secret_name).await? {
            Some(data) => password_from(&secret_name, &data)?,
            None => generate_password(),
        }
    };

    let (cookie_keyring, keyring) = if sc.spec.strategy == Strategy::Client {
        let secret_name = names::keyring(&name);
        let ring = match read(&api, &secret_name).await? {
            Some(data) => Keyring::parse(&data, now).map_err(|e| Error::MalformedSecret {
                name: secret_name,
                reason: e.to_string(),
            })?,
            None => Keyring::first(random_key(), now),
        };
        let client_spec = sc.spec.client.clone().unwrap_or_default();
        let policy = Policy {
            interval: client_spec.rotation_interval_seconds,
            retained: usize::try_from(client_spec.retained_keys).unwrap_or(2),
            propagation,
        };
        let (ring, rotation) = ring.step(now, &policy, random_key);
        let next_due = ring.next_due(&policy);
        (
            Some(ring.to_data()),
            Some(KeyringStep { rotation, next_due }),
        )
    } else {
        (None, None)
    };

    Ok(Inputs {
        build: BuildInputs {
            store_password,
            cookie_keyring,
            default_image: default_image.to_owned(),
            store_pods_floor: 0,
        },
        keyring,
    })
}

async fn read(api: &Api<Secret>, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, Error> {
    let secret = api
        .get_opt(name)
        .await
        .map_err(|source| Error::ReadSecret {
            name: name.to_owned(),
            source,
        })?;
    Ok(secret.map(|s| {
        s.data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect()
    }))
}

/// The password in an existing Secret; an unusable one is an error, never silently replaced
/// (the store nodes already use it).
pub fn password_from(secret: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<String, Error> {
    let malformed = |reason: &str| Error::MalformedSecret {
        name: secret.to_owned(),
        reason: reason.to_owned(),
    };
    let raw = data
        .get(PASSWORD_KEY)
        .ok_or_else(|| malformed("no password key"))?;
    let password =
        String::from_utf8(raw.clone()).map_err(|_| malformed("the password is not UTF-8"))?;
    if password.is_empty() {
        return Err(malformed("the password is empty"));
    }
    Ok(password)
}

pub fn generate_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), PASSWORD_LEN)
}

pub fn random_key() -> Vec<u8> {
    let mut key = vec![0u8; KEY_BYTES];
    rand::rng().fill_bytes(&mut key);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_password_is_long_url_safe_and_random() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn keys_are_random_and_of_the_cipher_size() {
        let (a, b) = (random_key(), random_key());
        assert_eq!(a.len(), KEY_BYTES);
        assert_ne!(a, b);
    }

    #[test]
    fn existing_password_is_kept_and_broken_ones_are_errors() {
        let ok = BTreeMap::from([(PASSWORD_KEY.to_owned(), b"s3cret-s3cret-s3cret".to_vec())]);
        assert_eq!(password_from("x", &ok).unwrap(), "s3cret-s3cret-s3cret");
        let missing = BTreeMap::new();
        assert_eq!(
            password_from("x", &missing).unwrap_err().label(),
            "malformed_secret"
        );
        let binary = BTreeMap::from([(PASSWORD_KEY.to_owned(), vec![0xff, 0xfe])]);
        assert!(password_from("x", &binary)
            .unwrap_err()
            .to_string()
            .contains("UTF-8"));
    }
}
