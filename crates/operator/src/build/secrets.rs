//! Secrets: the store password and the cookie keyring. Their contents come
//! from the controller (read from the cluster or generated there), never from here.

use super::labels::Component;
use super::{names, object, Desired, Owner, PASSWORD_KEY};
use k8s_openapi::ByteString;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub(crate) fn store_auth(owner: &Owner<'_>, password: &str) -> Desired {
    let data = BTreeMap::from([(
        PASSWORD_KEY.to_string(),
        bytes(password.as_bytes().to_vec()),
    )]);
    object(
        owner,
        "v1",
        "Secret",
        names::store_auth(owner.name),
        Component::Store,
        BTreeMap::new(),
        json!({ "type": "Opaque", "data": data }),
    )
}

pub(crate) fn keyring(owner: &Owner<'_>, entries: &BTreeMap<String, Vec<u8>>) -> Desired {
    let data: BTreeMap<String, Value> = entries
        .iter()
        .map(|(k, v)| (k.clone(), bytes(v.clone())))
        .collect();
    object(
        owner,
        "v1",
        "Secret",
        names::keyring(owner.name),
        Component::Frontend,
        BTreeMap::new(),
        json!({ "type": "Opaque", "data": data }),
    )
}

/// Secret data is base64 on the wire; k8s-openapi's ByteString encodes it.
fn bytes(b: Vec<u8>) -> Value {
    serde_json::to_value(ByteString(b)).unwrap_or(Value::Null)
}
