//! The build inputs that must survive reconciles: the store password and the cookie
//! keyring. Read from the Secrets the operator created earlier; generated (randomly,
//! once) only when the Secret does not exist yet, so a reconcile never rotates them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};
use rand::distr::{Alphanumeric, SampleString};
use rand::RngCore;

use crate::api::{SessionCluster, Strategy};
use crate::build::{names, BuildInputs, PASSWORD_KEY};
use crate::error::Error;

/// Length of a generated store password (alphanumeric: URL-safe for REDIS_URL).
pub const PASSWORD_LEN: usize = 32;
/// Name and size of the first cookie key; rotation (a later issue) adds more entries.
pub const FIRST_KEY: &str = "key-1";
pub const KEY_BYTES: usize = 32;

/// Reads the existing secrets of `sc`, generating what is missing.
pub async fn read_or_generate(
    client: &Client,
    sc: &SessionCluster,
    default_image: &str,
) -> Result<BuildInputs, Error> {
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

    let cookie_keyring = if sc.spec.strategy == Strategy::Client {
        let secret_name = names::keyring(&name);
        match read(&api, &secret_name).await? {
            Some(data) if !data.is_empty() => Some(data),
            Some(_) => {
                return Err(Error::MalformedSecret {
                    name: secret_name,
                    reason: "the keyring has no keys".into(),
                })
            }
            None => Some(generate_keyring()),
        }
    } else {
        None
    };

    Ok(BuildInputs {
        store_password,
        cookie_keyring,
        default_image: default_image.to_owned(),
        store_pods_floor: 0,
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

pub fn generate_keyring() -> BTreeMap<String, Vec<u8>> {
    let mut key = vec![0u8; KEY_BYTES];
    rand::rng().fill_bytes(&mut key);
    BTreeMap::from([(FIRST_KEY.to_owned(), key)])
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
    fn generated_keyring_has_one_random_key() {
        let a = generate_keyring();
        let b = generate_keyring();
        assert_eq!(a.keys().collect::<Vec<_>>(), vec![FIRST_KEY]);
        assert_eq!(a[FIRST_KEY].len(), KEY_BYTES);
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
