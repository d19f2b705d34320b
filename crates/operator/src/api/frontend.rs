//! `spec.frontend`: the user's web application.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The frontends: the user's pods, scaled by `kubectl scale sessioncluster` or
/// a HorizontalPodAutoscaler.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrontendSpec {
    /// Number of frontend pods. The scale subresource reads and writes this field.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,

    /// Pod template of the frontend Deployment, as in a Deployment's
    /// spec.template. sessionplane adds its labels, the session-store address
    /// (env SESSIONPLANE_STORE_ADDR, REDIS_URL) and, for strategy Client, the
    /// keyring volume.
    pub template: PodTemplate,

    /// Container port the application listens on; the frontend Service and the
    /// routing objects send traffic there.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Name of the container that receives the session environment. Defaults to
    /// the first container of the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = super::patterns::DNS1123_LABEL))]
    pub container_name: Option<String>,
}

fn default_replicas() -> i32 {
    2
}

fn default_port() -> i32 {
    8080
}

/// A core/v1 PodTemplateSpec kept as the user wrote it. Holding the raw JSON
/// rather than k8s-openapi's struct means a template with a typo or a wrong
/// type still deserializes (so the watch keeps working and the controller can
/// report the problem: see `crate::validate`), and no field is silently dropped
/// on the way to the Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(transparent)]
pub struct PodTemplate(pub Map<String, Value>);

impl PodTemplate {
    /// The template as k8s-openapi's type. Unknown fields are dropped here;
    /// `crate::validate` refuses templates that have any.
    pub fn typed(&self) -> Result<PodTemplateSpec, serde_json::Error> {
        serde_json::from_value(Value::Object(self.0.clone()))
    }

    /// Wraps a typed template (for tests and examples).
    pub fn from_typed(template: &PodTemplateSpec) -> Result<Self, serde_json::Error> {
        match serde_json::to_value(template)? {
            Value::Object(map) => Ok(Self(map)),
            _ => Ok(Self::default()),
        }
    }
}

impl JsonSchema for PodTemplate {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PodTemplate".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        pod_template_schema(generator)
    }
}

/// The full PodTemplateSpec schema from k8s-openapi is several hundred
/// kilobytes: it would push the CRD past the 256 KiB limit of the
/// `kubectl.kubernetes.io/last-applied-configuration` annotation (so plain
/// `kubectl apply -f crds/` would fail) and multiply the CEL cost estimates.
/// The template becomes a Deployment's template, and the API server validates
/// it fully there; `crate::validate` checks what sessionplane itself relies on
/// (a container, the named container, no clash with injected names).
fn pod_template_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "description": "Pod template of the frontend Deployment (a core/v1 PodTemplateSpec). Validated by the API server when sessionplane creates the Deployment.",
        "required": ["spec"],
        "properties": {
            "metadata": {
                "type": "object",
                "description": "Labels and annotations of the frontend pods (ObjectMeta).",
                "x-kubernetes-preserve-unknown-fields": true
            },
            "spec": {
                "type": "object",
                "description": "The pod spec (core/v1 PodSpec): containers, volumes, and so on.",
                "x-kubernetes-preserve-unknown-fields": true
            }
        }
    })
}
