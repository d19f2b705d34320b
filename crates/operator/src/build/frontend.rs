//! The frontend Deployment (the user's pod template plus what sessionplane
//! injects) and its Service.

use super::config::{strategy_name, CONFIG_HASH_ANNOTATION};
use super::labels::{labels_for, selector_for, Component};
use super::{
    agent, names, object, routing, BuildError, BuildInputs, Desired, Owner, FRONTEND_SERVICE_PORT,
    KEYRING_MOUNT_PATH, PASSWORD_KEY, REDIS_PORT,
};
use crate::api::Strategy;
use crate::validate::{effective_max_session_bytes, ValidationError, KEYRING_VOLUME};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, PodTemplateSpec, SecretKeySelector, SecretVolumeSource,
    Volume, VolumeMount,
};
use serde_json::json;
use std::collections::BTreeMap;

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// The environment sessionplane gives the app container. Order matters:
/// REDIS_URL refers to REDIS_PASSWORD with $(...) expansion, which only sees
/// variables defined before it.
fn session_env(owner: &Owner<'_>) -> Vec<EnvVar> {
    let spec = &owner.sc.spec;
    let mut out = vec![
        env("SESSIONPLANE_STRATEGY", strategy_name(spec.strategy)),
        env(
            "SESSIONPLANE_SESSION_TTL_SECONDS",
            spec.sessions.default_ttl_seconds.to_string(),
        ),
        env(
            "SESSIONPLANE_MAX_SESSION_BYTES",
            effective_max_session_bytes(spec).to_string(),
        ),
    ];
    let addr = match spec.strategy {
        Strategy::Store => Some(format!("{}:{REDIS_PORT}", names::store(owner.name))),
        // The agent sidecar listens on the pod's loopback.
        Strategy::Sticky | Strategy::Replicated => Some(format!("127.0.0.1:{REDIS_PORT}")),
        Strategy::Client => None,
    };
    match addr {
        Some(addr) => {
            out.push(env("SESSIONPLANE_STORE_ADDR", addr.clone()));
            out.push(EnvVar {
                name: "REDIS_PASSWORD".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: names::store_auth(owner.name),
                        key: PASSWORD_KEY.into(),
                        optional: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
            out.push(env(
                "REDIS_URL",
                format!("redis://:$(REDIS_PASSWORD)@{addr}/0"),
            ));
        }
        None => out.push(env("SESSIONPLANE_KEYRING_DIR", KEYRING_MOUNT_PATH)),
    }
    out
}

fn target_container<'a>(
    containers: &'a mut [Container],
    wanted: Option<&str>,
) -> Result<&'a mut Container, BuildError> {
    let found = match wanted {
        Some(name) => containers.iter_mut().find(|c| c.name == name),
        None => containers.first_mut(),
    };
    found.ok_or_else(|| {
        BuildError::Invalid(ValidationError::Template {
            reason: "no container to receive the session environment".into(),
        })
    })
}

fn pod_template(
    owner: &Owner<'_>,
    inputs: &BuildInputs,
    config_hash: &str,
) -> Result<serde_json::Value, BuildError> {
    let spec = &owner.sc.spec;
    let mut template: PodTemplateSpec = spec.frontend.template.typed().map_err(|e| {
        BuildError::Invalid(ValidationError::Template {
            reason: format!("is not a valid PodTemplateSpec: {e}"),
        })
    })?;
    let mut pod = template.spec.take().ok_or_else(|| {
        BuildError::Invalid(ValidationError::Template {
            reason: "spec is required".into(),
        })
    })?;
    let injected = session_env(owner);
    let container = target_container(&mut pod.containers, spec.frontend.container_name.as_deref())?;
    let mut container_env: Vec<EnvVar> = container
        .env
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| !injected.iter().any(|i| i.name == e.name))
        .collect();
    container_env.extend(injected);
    container.env = Some(container_env);
    if spec.strategy == Strategy::Client {
        container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(VolumeMount {
                name: KEYRING_VOLUME.into(),
                mount_path: KEYRING_MOUNT_PATH.into(),
                read_only: Some(true),
                ..Default::default()
            });
        pod.volumes.get_or_insert_with(Vec::new).push(Volume {
            name: KEYRING_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names::keyring(owner.name)),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let mut metadata = template.metadata.take().unwrap_or_default();
    let mut labels = metadata.labels.take().unwrap_or_default();
    for (k, v) in labels_for(owner.name, Component::Frontend) {
        // The app keeps its own app.kubernetes.io/name; the rest is ours
        // (validate() rejects templates that set our keys).
        if k == "app.kubernetes.io/name" && labels.contains_key(&k) {
            continue;
        }
        labels.insert(k, v);
    }
    let mut annotations = metadata.annotations.take().unwrap_or_default();
    annotations.insert(CONFIG_HASH_ANNOTATION.into(), config_hash.into());

    pod.termination_grace_period_seconds =
        agent::grace_period(owner, pod.termination_grace_period_seconds);
    let agent_here = matches!(spec.strategy, Strategy::Sticky | Strategy::Replicated);
    if agent_here {
        pod.volumes
            .get_or_insert_with(Vec::new)
            .push(agent::data_volume());
    }
    let mut pod_json = serde_json::to_value(&pod).map_err(|_| BuildError::BadInput {
        input: "spec.frontend.template",
        reason: "the pod spec does not serialize",
    })?;
    if agent_here {
        let sidecar = agent::sidecar(owner, inputs, pod.termination_grace_period_seconds);
        match pod_json
            .get_mut("initContainers")
            .and_then(|v| v.as_array_mut())
        {
            Some(list) => list.insert(0, sidecar),
            None => pod_json["initContainers"] = json!([sidecar]),
        }
    }
    let mut meta_json = json!({ "labels": labels, "annotations": annotations });
    if meta_json["annotations"]
        .as_object()
        .is_some_and(|a| a.is_empty())
    {
        meta_json.as_object_mut().map(|m| m.remove("annotations"));
    }
    Ok(json!({ "metadata": meta_json, "spec": pod_json }))
}

pub(crate) fn deployment(
    owner: &Owner<'_>,
    inputs: &BuildInputs,
    config_hash: &str,
) -> Result<Desired, BuildError> {
    let template = pod_template(owner, inputs, config_hash)?;
    Ok(object(
        owner,
        "apps/v1",
        "Deployment",
        names::frontend(owner.name),
        Component::Frontend,
        BTreeMap::new(),
        json!({"spec": {
            "replicas": owner.sc.spec.frontend.replicas,
            "selector": {"matchLabels": selector_for(owner.name, Component::Frontend)},
            "template": template,
        }}),
    ))
}

pub(crate) fn service(owner: &Owner<'_>) -> Result<Desired, BuildError> {
    let settings = routing::service::settings(owner)?;
    let mut spec = json!({
        "type": "ClusterIP",
        "selector": selector_for(owner.name, Component::Frontend),
        "ports": [{
            "name": "http",
            "port": FRONTEND_SERVICE_PORT,
            "targetPort": owner.sc.spec.frontend.port,
            "protocol": "TCP",
        }],
        "sessionAffinity": settings.session_affinity,
    });
    if let Some(timeout) = settings.client_ip_timeout_seconds {
        spec["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": timeout}});
    }
    Ok(object(
        owner,
        "v1",
        "Service",
        names::frontend(owner.name),
        Component::Frontend,
        settings.annotations,
        json!({ "spec": spec }),
    ))
}
