//! Advice on a spec the API server accepted and the operator can run, but that will
//! hurt users anyway. Warned as Events once per generation, never refused: the
//! frontends work, only worse.

use crate::api::FrontendSpec;
use k8s_openapi::api::core::v1::Container;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    /// Stable Event reason.
    pub reason: &'static str,
    pub message: String,
}

/// Everything worth saying about the frontend part of a spec.
pub fn advise(frontend: &FrontendSpec) -> Vec<Advice> {
    let Ok(template) = frontend.template.typed() else {
        // An undecodable template is validate()'s to report.
        return Vec::new();
    };
    let containers = template.spec.map(|s| s.containers).unwrap_or_default();
    let Some(serving) = serving_container(&containers, frontend) else {
        return Vec::new();
    };
    let mut advice = Vec::new();
    if serving.readiness_probe.is_none() {
        advice.push(Advice {
            reason: "FrontendWithoutReadinessProbe",
            message: format!(
                "container {} serves port {} but has no readinessProbe: new frontend pods \
                 join the Service before the app listens, so users get refused connections \
                 on every scale-up and rollout. Add one, e.g. an httpGet probe on port {}.",
                serving.name, frontend.port, frontend.port
            ),
        });
    }
    advice
}

/// The container the frontend Service sends traffic to: the one declaring the port,
/// else the one named by containerName, else the first.
fn serving_container<'a>(
    containers: &'a [Container],
    frontend: &FrontendSpec,
) -> Option<&'a Container> {
    let declares_port = |c: &&Container| {
        c.ports
            .iter()
            .flatten()
            .any(|p| p.container_port == frontend.port)
    };
    containers
        .iter()
        .find(declares_port)
        .or_else(|| {
            frontend
                .container_name
                .as_ref()
                .and_then(|n| containers.iter().find(|c| &c.name == n))
        })
        .or_else(|| containers.first())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PodTemplate;
    use serde_json::json;

    fn frontend(containers: serde_json::Value, container_name: Option<&str>) -> FrontendSpec {
        let template = json!({ "spec": { "containers": containers } });
        FrontendSpec {
            replicas: 3,
            template: PodTemplate(template.as_object().cloned().unwrap_or_default()),
            port: 8080,
            container_name: container_name.map(str::to_owned),
        }
    }

    fn probe() -> serde_json::Value {
        json!({ "httpGet": { "path": "/readyz", "port": 8080 } })
    }

    #[test]
    fn a_serving_container_without_readiness_probe_is_advised_against() {
        let advice = advise(&frontend(json!([{ "name": "web", "image": "app" }]), None));
        assert_eq!(advice.len(), 1);
        assert_eq!(advice[0].reason, "FrontendWithoutReadinessProbe");
        assert!(advice[0].message.contains("container web serves port 8080"));
    }

    #[test]
    fn a_readiness_probe_on_the_serving_container_says_nothing() {
        let containers = json!([{ "name": "web", "image": "app", "readinessProbe": probe() }]);
        assert_eq!(advise(&frontend(containers, None)), Vec::new());
    }

    #[test]
    fn the_container_declaring_the_port_is_the_one_that_needs_the_probe() {
        let containers = json!([
            { "name": "log-shipper", "image": "shipper", "readinessProbe": probe() },
            { "name": "web", "image": "app", "ports": [{ "containerPort": 8080 }] },
        ]);
        let advice = advise(&frontend(containers.clone(), Some("log-shipper")));
        assert_eq!(advice.len(), 1);
        assert!(advice[0].message.contains("container web"), "{advice:?}");

        let containers = json!([
            { "name": "log-shipper", "image": "shipper" },
            { "name": "web", "image": "app", "ports": [{ "containerPort": 8080 }],
              "readinessProbe": probe() },
        ]);
        assert_eq!(advise(&frontend(containers, None)), Vec::new());
    }

    #[test]
    fn without_a_port_declared_container_name_then_the_first_container_serve() {
        let containers = json!([
            { "name": "sidecar", "image": "s" },
            { "name": "web", "image": "app", "readinessProbe": probe() },
        ]);
        assert_eq!(
            advise(&frontend(containers.clone(), Some("web"))),
            Vec::new()
        );
        let advice = advise(&frontend(containers, None));
        assert!(
            advice[0].message.contains("container sidecar"),
            "{advice:?}"
        );
    }

    #[test]
    fn a_template_without_containers_is_left_to_validation() {
        assert_eq!(advise(&frontend(json!([]), None)), Vec::new());
    }
}
