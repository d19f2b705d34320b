//! Builders over every strategy × affinity × provider combination.

use super::*;
use crate::api::SessionCluster;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Affinity {
    None,
    ClientIp,
    CookieName,
    CookieFull,
    HashHeader,
    HashCookie,
    HashQuery,
}

const AFFINITIES: [Affinity; 7] = [
    Affinity::None,
    Affinity::ClientIp,
    Affinity::CookieName,
    Affinity::CookieFull,
    Affinity::HashHeader,
    Affinity::HashCookie,
    Affinity::HashQuery,
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Provider {
    Service,
    Nginx,
    Traefik,
    HaProxy,
    Gateway,
}

const PROVIDERS: [Provider; 5] = [
    Provider::Service,
    Provider::Nginx,
    Provider::Traefik,
    Provider::HaProxy,
    Provider::Gateway,
];
const STRATEGIES: [&str; 4] = ["Store", "Sticky", "Replicated", "Client"];

fn affinity_json(a: Affinity, p: Provider) -> Value {
    match a {
        Affinity::None => json!({"mode": "None"}),
        Affinity::ClientIp => json!({"mode": "ClientIP"}),
        Affinity::CookieName => {
            json!({"mode": "Cookie", "cookie": {"name": "route", "maxAgeSeconds": 90061}})
        }
        // HAProxy sets its cookie on /, and Gateway API cannot set path, sameSite or secure.
        Affinity::CookieFull if p == Provider::HaProxy => {
            json!({"mode": "Cookie", "cookie": {"name": "route", "maxAgeSeconds": 3600, "path": "/", "sameSite": "None", "secure": true}})
        }
        Affinity::CookieFull => {
            json!({"mode": "Cookie", "cookie": {"name": "route", "maxAgeSeconds": 3600, "path": "/shop", "sameSite": "None", "secure": true}})
        }
        Affinity::HashHeader => {
            json!({"mode": "Hash", "hash": {"source": "Header", "name": "X-User-Id"}})
        }
        Affinity::HashCookie => {
            json!({"mode": "Hash", "hash": {"source": "Cookie", "name": "user_id"}})
        }
        Affinity::HashQuery => json!({"mode": "Hash", "hash": {"source": "Query", "name": "user"}}),
    }
}

fn provider_json(p: Provider) -> Value {
    match p {
        Provider::Service => json!({"type": "Service"}),
        Provider::Nginx => {
            json!({"type": "Ingress", "ingress": {"dialect": "Nginx", "className": "nginx"}})
        }
        Provider::Traefik => json!({"type": "Ingress", "ingress": {"dialect": "Traefik"}}),
        Provider::HaProxy => json!({"type": "Ingress", "ingress": {"dialect": "HAProxy"}}),
        Provider::Gateway => {
            json!({"type": "GatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "edge", "namespace": "infra", "sectionName": "https"}]}})
        }
    }
}

/// The capability table from the design, written out independently of validate.rs.
fn expressible(strategy: &str, a: Affinity, p: Provider) -> bool {
    if strategy == "Sticky" && a == Affinity::None {
        return false;
    }
    match p {
        Provider::Service => matches!(a, Affinity::None | Affinity::ClientIp),
        Provider::Nginx => true,
        Provider::Traefik => matches!(
            a,
            Affinity::None | Affinity::CookieName | Affinity::CookieFull
        ),
        Provider::HaProxy => a != Affinity::HashCookie,
        Provider::Gateway => a != Affinity::CookieFull,
    }
}

fn cluster_json(strategy: &str, a: Affinity, p: Provider) -> Value {
    let mut routing = json!({"affinity": affinity_json(a, p), "provider": provider_json(p)});
    if p != Provider::Service {
        routing["host"] = json!("shop.example.com");
    }
    if matches!(p, Provider::Nginx | Provider::Traefik | Provider::HaProxy) {
        routing["tlsSecretName"] = json!("shop-tls");
    }
    json!({
        "apiVersion": "sessionplane.dev/v1alpha1",
        "kind": "SessionCluster",
        "metadata": {"name": "shop", "namespace": "web", "uid": "0b7c2c1e-1111-2222-3333-444455556666", "generation": 3},
        "spec": {
            "strategy": strategy,
            "frontend": {"replicas": 3, "port": 3000, "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "shop"}},
                "spec": {"containers": [{"name": "web", "image": "shop:1", "env": [{"name": "NODE_ENV", "value": "production"}]}]}
            }},
            "routing": routing,
        }
    })
}

fn cluster(v: Value) -> SessionCluster {
    serde_json::from_value(v).expect("fixture deserializes")
}

fn inputs() -> BuildInputs {
    BuildInputs {
        store_password: "s3cr3tPassw0rdXYZabc".into(),
        cookie_keyring: Some(BTreeMap::from([("key-1".to_string(), vec![7u8; 32])])),
        default_image: "ghcr.io/sessionplane/sessionplane:0.1.0".into(),
        store_pods_floor: 0,
    }
}

fn find<'a>(objs: &'a [Desired], kind: &str, name: &str) -> &'a Value {
    &objs
        .iter()
        .find(|d| d.kind == kind && d.name == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {:?}", kinds(objs)))
        .object
}

fn kinds(objs: &[Desired]) -> Vec<(String, String)> {
    objs.iter()
        .map(|d| (d.kind.clone(), d.name.clone()))
        .collect()
}

fn app_env(objs: &[Desired]) -> Vec<Value> {
    let dep = find(objs, "Deployment", "shop-frontend");
    dep["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn env_value(env: &[Value], name: &str) -> Option<Value> {
    env.iter().find(|e| e["name"] == name).cloned()
}

#[test]
fn every_combination_builds_or_is_rejected_with_the_field_named() {
    let mut built = 0;
    let mut rejected = 0;
    for strategy in STRATEGIES {
        for a in AFFINITIES {
            for p in PROVIDERS {
                let sc = cluster(cluster_json(strategy, a, p));
                let result = desired_objects(&sc, &inputs());
                let case = format!("{strategy} × {a:?} × {p:?}");
                if expressible(strategy, a, p) {
                    let objs = result.unwrap_or_else(|e| panic!("{case}: {e}"));
                    check_common(&objs, &case);
                    check_strategy(strategy, &objs, &case);
                    check_routing(a, p, &objs, &case);
                    built += 1;
                } else {
                    let err = result.expect_err(&case);
                    let msg = err.to_string();
                    assert!(msg.contains("spec.routing."), "{case}: {msg}");
                    assert!(matches!(err, BuildError::Invalid(_)), "{case}: {err:?}");
                    rejected += 1;
                }
            }
        }
    }
    assert_eq!(built + rejected, 4 * 7 * 5);
    assert!(
        built > 80 && rejected > 30,
        "built {built}, rejected {rejected}"
    );
}

fn check_common(objs: &[Desired], case: &str) {
    let mut seen = std::collections::BTreeSet::new();
    for d in objs {
        assert!(
            seen.insert((d.kind.clone(), d.name.clone())),
            "{case}: duplicate {} {}",
            d.kind,
            d.name
        );
        assert!(
            owned_kinds().contains(&(d.api_version.as_str(), d.kind.as_str())),
            "{case}: {} not in owned_kinds",
            d.kind
        );
        let o = &d.object;
        assert_eq!(o["apiVersion"], d.api_version, "{case}");
        assert_eq!(o["kind"], d.kind, "{case}");
        assert_eq!(o["metadata"]["name"], d.name, "{case}");
        assert_eq!(o["metadata"]["namespace"], "web", "{case}");
        assert!(d.name.len() <= 63, "{case}: {}", d.name);
        let labels = &o["metadata"]["labels"];
        assert_eq!(
            labels["app.kubernetes.io/managed-by"], "sessionplane",
            "{case}: {}",
            d.name
        );
        assert_eq!(labels["app.kubernetes.io/instance"], "shop", "{case}");
        assert_eq!(labels["sessionplane.dev/cluster"], "shop", "{case}");
        assert!(labels["app.kubernetes.io/component"].is_string(), "{case}");
        assert!(labels["app.kubernetes.io/name"].is_string(), "{case}");
        let owners = o["metadata"]["ownerReferences"]
            .as_array()
            .expect("ownerReferences");
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0]["kind"], "SessionCluster");
        assert_eq!(owners[0]["apiVersion"], "sessionplane.dev/v1alpha1");
        assert_eq!(owners[0]["uid"], "0b7c2c1e-1111-2222-3333-444455556666");
        assert_eq!(owners[0]["controller"], true);
        assert_eq!(owners[0]["blockOwnerDeletion"], true);
    }
    let dep = find(objs, "Deployment", "shop-frontend");
    assert_eq!(dep["spec"]["replicas"], 3);
    let selector = &dep["spec"]["selector"]["matchLabels"];
    let pod_labels = &dep["spec"]["template"]["metadata"]["labels"];
    for (k, v) in selector.as_object().expect("selector") {
        assert_eq!(
            &pod_labels[k], v,
            "{case}: pod labels must match the selector"
        );
    }
    assert_eq!(
        pod_labels["app.kubernetes.io/name"], "shop",
        "{case}: the app keeps its name label"
    );
    assert!(
        dep["spec"]["template"]["metadata"]["annotations"]["sessionplane.dev/config-hash"]
            .is_string()
    );
    let env = app_env(objs);
    assert_eq!(
        env_value(&env, "NODE_ENV").expect("user env kept")["value"],
        "production"
    );
    let svc = find(objs, "Service", "shop-frontend");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 3000, "{case}");
    assert_eq!(svc["spec"]["selector"], *selector, "{case}");
    find(objs, "ConfigMap", "shop-config");
}

fn check_strategy(strategy: &str, objs: &[Desired], case: &str) {
    let env = app_env(objs);
    let has = |kind: &str, name: &str| objs.iter().any(|d| d.kind == kind && d.name == name);
    let pod = &find(objs, "Deployment", "shop-frontend")["spec"]["template"]["spec"];
    match strategy {
        "Store" => {
            assert!(
                has("StatefulSet", "shop-store") && has("PodDisruptionBudget", "shop-store"),
                "{case}"
            );
            assert!(
                has("Service", "shop-store") && has("Service", "shop-store-headless"),
                "{case}"
            );
            assert!(
                has("Secret", "shop-store-auth") && !has("Secret", "shop-keyring"),
                "{case}"
            );
            assert_eq!(
                env_value(&env, "SESSIONPLANE_STORE_ADDR").expect("addr")["value"],
                "shop-store:6379"
            );
            assert!(pod["initContainers"].is_null(), "{case}");
        }
        "Sticky" | "Replicated" => {
            assert!(
                !has("StatefulSet", "shop-store") && has("Service", "shop-peers"),
                "{case}"
            );
            assert!(has("Secret", "shop-store-auth"), "{case}");
            assert_eq!(
                env_value(&env, "SESSIONPLANE_STORE_ADDR").expect("addr")["value"],
                "127.0.0.1:6379"
            );
            let agent = &pod["initContainers"][0];
            assert_eq!(agent["name"], "sessionplane-agent", "{case}");
            assert_eq!(agent["restartPolicy"], "Always", "{case}: a native sidecar");
            assert_eq!(agent["args"], json!(["agent"]));
            assert_eq!(
                agent["readinessProbe"]["httpGet"],
                json!({"path": "/readyz", "port": "sp-admin"}),
                "{case}"
            );
            if strategy == "Replicated" {
                // The app waits for the agent's bootstrap: a native sidecar's startup
                // probe gates the main containers.
                assert_eq!(
                    agent["startupProbe"]["httpGet"],
                    json!({"path": "/readyz", "port": "sp-admin"}),
                    "{case}"
                );
                assert!(
                    agent["startupProbe"]["failureThreshold"]
                        .as_i64()
                        .unwrap_or(0)
                        * agent["startupProbe"]["periodSeconds"].as_i64().unwrap_or(0)
                        >= 30,
                    "{case}: the startup probe outlasts the agent's wait for a ready peer"
                );
            } else {
                // A Sticky agent waits for the operator to put its pod in the ring, which
                // may wait for a running migration: no startup probe to restart it meanwhile.
                assert!(agent["startupProbe"].is_null(), "{case}");
            }
            let agent_env = agent["env"].as_array().expect("agent env");
            let advertise = agent_env
                .iter()
                .find(|e| e["name"] == "SESSIONPLANE_ADVERTISE_ADDR")
                .expect("advertise address");
            assert_eq!(advertise["value"], "$(SESSIONPLANE_POD_IP):7379", "{case}");
            let pod_ip = agent_env
                .iter()
                .position(|e| e["name"] == "SESSIONPLANE_POD_IP")
                .expect("pod IP");
            let advertise_at = agent_env
                .iter()
                .position(|e| e["name"] == "SESSIONPLANE_ADVERTISE_ADDR")
                .expect("advertise");
            assert!(
                pod_ip < advertise_at,
                "{case}: $(VAR) expands only earlier variables"
            );
            assert_eq!(
                agent["livenessProbe"]["httpGet"],
                json!({"path": "/healthz", "port": "sp-admin"})
            );
        }
        "Client" => {
            assert!(
                !has("StatefulSet", "shop-store") && !has("Secret", "shop-store-auth"),
                "{case}"
            );
            assert!(has("Secret", "shop-keyring"), "{case}");
            assert!(env_value(&env, "REDIS_URL").is_none(), "{case}");
            assert_eq!(
                env_value(&env, "SESSIONPLANE_KEYRING_DIR").expect("dir")["value"],
                KEYRING_MOUNT_PATH
            );
            let mount = &pod["containers"][0]["volumeMounts"][0];
            assert_eq!(mount["mountPath"], KEYRING_MOUNT_PATH);
            assert_eq!(mount["readOnly"], true);
            assert_eq!(pod["volumes"][0]["secret"]["secretName"], "shop-keyring");
        }
        other => panic!("unknown strategy {other}"),
    }
    if strategy != "Client" {
        let pw = env_value(&env, "REDIS_PASSWORD").expect("password env");
        assert_eq!(pw["valueFrom"]["secretKeyRef"]["name"], "shop-store-auth");
        let url_pos = env
            .iter()
            .position(|e| e["name"] == "REDIS_URL")
            .expect("REDIS_URL");
        let pw_pos = env
            .iter()
            .position(|e| e["name"] == "REDIS_PASSWORD")
            .expect("REDIS_PASSWORD");
        assert!(
            pw_pos < url_pos,
            "{case}: $(REDIS_PASSWORD) must be defined before REDIS_URL"
        );
        let url = env[url_pos]["value"].as_str().expect("url");
        assert!(
            url.starts_with("redis://:$(REDIS_PASSWORD)@"),
            "{case}: {url}"
        );
    }
}

fn annotations(o: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(o["metadata"]["annotations"].clone()).unwrap_or_default()
}

fn check_routing(a: Affinity, p: Provider, objs: &[Desired], case: &str) {
    let svc = find(objs, "Service", "shop-frontend");
    let routing_kinds: Vec<&str> = objs
        .iter()
        .filter(|d| {
            matches!(
                d.kind.as_str(),
                "Ingress" | "HTTPRoute" | "BackendTrafficPolicy"
            )
        })
        .map(|d| d.kind.as_str())
        .collect();
    let expected_affinity = if p == Provider::Service && a == Affinity::ClientIp {
        "ClientIP"
    } else {
        "None"
    };
    assert_eq!(svc["spec"]["sessionAffinity"], expected_affinity, "{case}");
    match p {
        Provider::Service => {
            assert!(routing_kinds.is_empty(), "{case}");
            if a == Affinity::ClientIp {
                assert_eq!(
                    svc["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
                    10800
                );
            }
        }
        Provider::Nginx | Provider::Traefik | Provider::HaProxy => {
            assert_eq!(routing_kinds, vec!["Ingress"], "{case}");
            let ing = find(objs, "Ingress", "shop-frontend");
            let rule = &ing["spec"]["rules"][0];
            assert_eq!(rule["host"], "shop.example.com");
            assert_eq!(
                rule["http"]["paths"][0]["backend"]["service"]["name"],
                "shop-frontend"
            );
            assert_eq!(
                rule["http"]["paths"][0]["backend"]["service"]["port"]["number"],
                80
            );
            assert_eq!(ing["spec"]["tls"][0]["secretName"], "shop-tls");
            let ann = annotations(ing);
            let svc_ann = annotations(svc);
            check_ingress_annotations(a, p, &ann, &svc_ann, case);
        }
        Provider::Gateway => {
            let route = find(objs, "HTTPRoute", "shop-frontend");
            assert_eq!(route["apiVersion"], "gateway.networking.k8s.io/v1");
            assert_eq!(
                route["spec"]["parentRefs"][0],
                json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge", "namespace": "infra", "sectionName": "https"})
            );
            assert_eq!(route["spec"]["hostnames"], json!(["shop.example.com"]));
            let rule = &route["spec"]["rules"][0];
            assert_eq!(rule["backendRefs"][0]["name"], "shop-frontend");
            assert_eq!(rule["backendRefs"][0]["port"], 80);
            let persistence = &rule["sessionPersistence"];
            let policy = objs
                .iter()
                .find(|d| d.kind == "BackendTrafficPolicy")
                .map(|d| &d.object);
            match a {
                Affinity::None => assert!(persistence.is_null() && policy.is_none(), "{case}"),
                Affinity::CookieName => {
                    assert!(policy.is_none(), "{case}");
                    assert_eq!(
                        *persistence,
                        json!({"sessionName": "route", "type": "Cookie", "absoluteTimeout": "25h1m1s", "cookieConfig": {"lifetimeType": "Permanent"}})
                    );
                }
                Affinity::ClientIp
                | Affinity::HashHeader
                | Affinity::HashCookie
                | Affinity::HashQuery => {
                    assert!(persistence.is_null(), "{case}");
                    let policy = policy.expect("a BackendTrafficPolicy");
                    assert_eq!(policy["apiVersion"], "gateway.envoyproxy.io/v1alpha1");
                    assert_eq!(
                        policy["spec"]["targetRefs"],
                        json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "shop-frontend"}])
                    );
                    assert_eq!(policy["spec"]["loadBalancer"]["type"], "ConsistentHash");
                    let expected = match a {
                        Affinity::ClientIp => json!({"type": "SourceIP"}),
                        Affinity::HashHeader => {
                            json!({"type": "Headers", "headers": [{"name": "X-User-Id"}]})
                        }
                        Affinity::HashCookie => {
                            json!({"type": "Cookie", "cookie": {"name": "user_id"}})
                        }
                        _ => json!({"type": "QueryParams", "queryParams": [{"name": "user"}]}),
                    };
                    assert_eq!(
                        policy["spec"]["loadBalancer"]["consistentHash"], expected,
                        "{case}"
                    );
                }
                Affinity::CookieFull => unreachable!("rejected"),
            }
        }
    }
}

fn check_ingress_annotations(
    a: Affinity,
    p: Provider,
    ann: &BTreeMap<String, String>,
    svc_ann: &BTreeMap<String, String>,
    case: &str,
) {
    let get = |k: &str| ann.get(k).map(String::as_str);
    match p {
        Provider::Nginx => {
            let n = |k: &str| get(&format!("nginx.ingress.kubernetes.io/{k}"));
            match a {
                Affinity::None => assert!(ann.is_empty(), "{case}: {ann:?}"),
                Affinity::ClientIp => assert_eq!(n("upstream-hash-by"), Some("$remote_addr")),
                Affinity::HashHeader => assert_eq!(n("upstream-hash-by"), Some("$http_x_user_id")),
                Affinity::HashCookie => assert_eq!(n("upstream-hash-by"), Some("$cookie_user_id")),
                Affinity::HashQuery => assert_eq!(n("upstream-hash-by"), Some("$arg_user")),
                Affinity::CookieName => {
                    assert_eq!(n("affinity"), Some("cookie"));
                    assert_eq!(n("session-cookie-name"), Some("route"));
                    assert_eq!(n("session-cookie-max-age"), Some("90061"));
                    assert_eq!(n("session-cookie-samesite"), None);
                }
                Affinity::CookieFull => {
                    assert_eq!(n("session-cookie-path"), Some("/shop"));
                    assert_eq!(n("session-cookie-samesite"), Some("None"));
                    assert_eq!(n("session-cookie-secure"), Some("true"));
                }
            }
            assert!(svc_ann.is_empty(), "{case}");
        }
        Provider::Traefik => {
            assert!(
                ann.is_empty(),
                "{case}: Traefik reads stickiness from the Service"
            );
            let t = |k: &str| {
                svc_ann
                    .get(&format!(
                        "traefik.ingress.kubernetes.io/service.sticky.cookie{k}"
                    ))
                    .map(String::as_str)
            };
            match a {
                Affinity::None => assert!(svc_ann.is_empty(), "{case}"),
                Affinity::CookieName => {
                    assert_eq!(t(""), Some("true"));
                    assert_eq!(t(".name"), Some("route"));
                    assert_eq!(t(".maxage"), Some("90061"));
                }
                Affinity::CookieFull => {
                    assert_eq!(t(".samesite"), Some("none"));
                    assert_eq!(t(".secure"), Some("true"));
                    assert_eq!(t(".path"), Some("/shop"));
                }
                _ => unreachable!("rejected"),
            }
        }
        Provider::HaProxy => {
            let h = |k: &str| get(&format!("haproxy-ingress.github.io/{k}"));
            match a {
                Affinity::None => assert!(ann.is_empty(), "{case}"),
                Affinity::ClientIp => assert_eq!(h("balance-algorithm"), Some("source")),
                Affinity::HashHeader => assert_eq!(h("balance-algorithm"), Some("hdr(X-User-Id)")),
                Affinity::HashQuery => assert_eq!(h("balance-algorithm"), Some("url_param user")),
                Affinity::CookieName => {
                    assert_eq!(h("affinity"), Some("cookie"));
                    assert_eq!(h("session-cookie-name"), Some("route"));
                    assert_eq!(
                        h("session-cookie-keywords"),
                        Some("indirect nocache httponly attr Max-Age=90061")
                    );
                }
                Affinity::CookieFull => assert_eq!(
                    h("session-cookie-keywords"),
                    Some("indirect nocache httponly secure attr SameSite=None attr Max-Age=3600")
                ),
                Affinity::HashCookie => unreachable!("rejected"),
            }
            assert!(svc_ann.is_empty(), "{case}");
        }
        _ => unreachable!(),
    }
}

#[test]
fn output_is_byte_identical_for_the_same_input() {
    for strategy in STRATEGIES {
        for a in AFFINITIES {
            for p in PROVIDERS {
                let sc = cluster(cluster_json(strategy, a, p));
                let (Ok(x), Ok(y)) = (
                    desired_objects(&sc, &inputs()),
                    desired_objects(&sc.clone(), &inputs()),
                ) else {
                    continue;
                };
                let text = |objs: &[Desired]| {
                    objs.iter()
                        .map(|d| d.object.to_string())
                        .collect::<Vec<_>>()
                };
                assert_eq!(text(&x), text(&y));
            }
        }
    }
}

#[test]
fn store_statefulset_has_what_the_store_needs() {
    let mut v = cluster_json("Store", Affinity::None, Provider::Service);
    v["spec"]["store"] = json!({"replicas": 5, "replicationFactor": 3, "persistence": {"size": "2Gi", "storageClassName": "fast", "fsync": "Always"}, "image": "registry.local/sp:dev", "resources": {"requests": {"memory": "256Mi"}}, "commandTimeoutSeconds": 9});
    let objs = desired_objects(&cluster(v), &inputs()).expect("builds");
    let sts = find(&objs, "StatefulSet", "shop-store");
    let spec = &sts["spec"];
    assert_eq!(spec["replicas"], 5);
    assert_eq!(spec["podManagementPolicy"], "Parallel");
    assert_eq!(spec["serviceName"], "shop-store-headless");
    let claim = &spec["volumeClaimTemplates"][0];
    assert_eq!(claim["metadata"]["name"], "data");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "2Gi");
    assert_eq!(claim["spec"]["storageClassName"], "fast");
    let pod = &spec["template"]["spec"];
    assert!(pod["volumes"].is_null(), "no emptyDir when persistent");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.local/sp:dev");
    assert_eq!(c["args"], json!(["store"]));
    assert_eq!(c["resources"]["requests"]["memory"], "256Mi");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "admin"})
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "admin"})
    );
    // A deleted store pod keeps serving while kube-proxy forgets it, within its grace.
    assert_eq!(
        c["lifecycle"]["preStop"],
        json!({"sleep": {"seconds": store::STORE_DRAIN_SECONDS}})
    );
    assert!(
        store::STORE_DRAIN_SECONDS
            < pod["terminationGracePeriodSeconds"]
                .as_i64()
                .expect("grace")
    );
    let ports: Vec<(String, i64)> = c["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["containerPort"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        vec![
            ("redis".into(), 6379),
            ("peer".into(), 7379),
            ("admin".into(), 9379)
        ]
    );
    let config = find(&objs, "ConfigMap", "shop-config");
    assert_eq!(config["data"]["SESSIONPLANE_FSYNC"], "always");
    assert_eq!(config["data"]["SESSIONPLANE_PARTITIONS"], "1024");
    // The store's command timeout, in the unit of its flag (--command-timeout-ms), in
    // the store's own pod template (a change rolls the store, not the frontends).
    assert!(config["data"]
        .get("SESSIONPLANE_COMMAND_TIMEOUT_MS")
        .is_none());
    let env = &spec["template"]["spec"]["containers"][0]["env"];
    let timeout = env
        .as_array()
        .and_then(|e| {
            e.iter()
                .find(|v| v["name"] == "SESSIONPLANE_COMMAND_TIMEOUT_MS")
        })
        .map(|v| v["value"].clone());
    assert_eq!(timeout, Some(serde_json::json!("9000")));
    // The ring epochs carry the replication factor; in the hashed settings a change of it
    // would roll every pod mid-migration.
    assert!(config["data"]
        .get("SESSIONPLANE_REPLICATION_FACTOR")
        .is_none());
    let headless = find(&objs, "Service", "shop-store-headless");
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);
    let pdb = find(&objs, "PodDisruptionBudget", "shop-store");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        spec["selector"]["matchLabels"]
    );
    let secret = find(&objs, "Secret", "shop-store-auth");
    // base64 of the password
    assert_eq!(secret["data"]["password"], "czNjcjN0UGFzc3cwcmRYWVphYmM=");
}

#[test]
fn store_without_persistence_uses_an_empty_dir_and_the_default_image() {
    let objs = desired_objects(
        &cluster(cluster_json("Store", Affinity::None, Provider::Service)),
        &inputs(),
    )
    .expect("builds");
    let sts = find(&objs, "StatefulSet", "shop-store");
    assert!(sts["spec"]["volumeClaimTemplates"].is_null());
    assert_eq!(
        sts["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "data", "emptyDir": {}}])
    );
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/sessionplane/sessionplane:0.1.0"
    );
}

#[test]
fn a_settings_change_changes_the_config_hash() {
    let a = cluster(cluster_json("Store", Affinity::None, Provider::Service));
    let mut v = cluster_json("Store", Affinity::None, Provider::Service);
    v["spec"]["sessions"] = json!({"defaultTTLSeconds": 600});
    let b = cluster(v);
    let hash = |sc: &SessionCluster| {
        let objs = desired_objects(sc, &inputs()).expect("builds");
        find(&objs, "StatefulSet", "shop-store")["spec"]["template"]["metadata"]["annotations"]
            ["sessionplane.dev/config-hash"]
            .clone()
    };
    assert_ne!(hash(&a), hash(&b));
    assert_eq!(hash(&a), hash(&a.clone()));
}

#[test]
fn a_store_resize_or_replication_change_rolls_no_pod() {
    // The ring driver moves partitions for these; a new config hash would also restart
    // every store and frontend pod in the middle of that move (seen end to end).
    let a = cluster(cluster_json("Store", Affinity::None, Provider::Service));
    let mut v = cluster_json("Store", Affinity::None, Provider::Service);
    v["spec"]["store"]["replicas"] = json!(5);
    v["spec"]["store"]["replicationFactor"] = json!(3);
    let b = cluster(v);
    let hashes = |sc: &SessionCluster| {
        let objs = desired_objects(sc, &inputs()).expect("builds");
        [
            ("StatefulSet", "shop-store"),
            ("Deployment", "shop-frontend"),
        ]
        .map(|(kind, name)| {
            find(&objs, kind, name)["spec"]["template"]["metadata"]["annotations"]
                ["sessionplane.dev/config-hash"]
                .clone()
        })
    };
    assert_eq!(hashes(&a), hashes(&b));
}

#[test]
fn the_session_env_goes_to_the_named_container_and_replaces_stale_values() {
    let mut v = cluster_json("Store", Affinity::None, Provider::Service);
    v["spec"]["frontend"]["containerName"] = json!("app");
    v["spec"]["frontend"]["template"]["spec"]["containers"] = json!([
        {"name": "proxy", "image": "envoy:1"},
        {"name": "app", "image": "shop:1", "env": [{"name": "SESSIONPLANE_STORE_ADDR", "value": "stale:1"}, {"name": "KEEP", "value": "1"}]},
    ]);
    let objs = desired_objects(&cluster(v), &inputs()).expect("builds");
    let containers =
        &find(&objs, "Deployment", "shop-frontend")["spec"]["template"]["spec"]["containers"];
    assert!(
        containers[0]["env"].is_null(),
        "the proxy container is untouched"
    );
    let env = containers[1]["env"].as_array().expect("env");
    let addrs: Vec<&Value> = env
        .iter()
        .filter(|e| e["name"] == "SESSIONPLANE_STORE_ADDR")
        .collect();
    assert_eq!(addrs.len(), 1);
    assert_eq!(addrs[0]["value"], "shop-store:6379");
    assert!(env.iter().any(|e| e["name"] == "KEEP"));
}

#[test]
fn missing_inputs_and_metadata_are_reported() {
    let sc = cluster(cluster_json("Client", Affinity::None, Provider::Service));
    let mut no_keyring = inputs();
    no_keyring.cookie_keyring = None;
    let err = desired_objects(&sc, &no_keyring).expect_err("keyring required");
    assert_eq!(err.label(), "missing_input");
    let mut bad_key = inputs();
    bad_key.cookie_keyring = Some(BTreeMap::from([("a/b".to_string(), vec![1])]));
    assert_eq!(
        desired_objects(&sc, &bad_key).expect_err("bad key").label(),
        "bad_input"
    );

    let store = cluster(cluster_json("Store", Affinity::None, Provider::Service));
    let mut weak = inputs();
    weak.store_password = "short".into();
    assert_eq!(
        desired_objects(&store, &weak).expect_err("short").label(),
        "bad_input"
    );
    weak.store_password = "has spaces and @ signs!!".into();
    assert_eq!(
        desired_objects(&store, &weak).expect_err("unsafe").label(),
        "bad_input"
    );

    let mut v = cluster_json("Store", Affinity::None, Provider::Service);
    v["metadata"].as_object_mut().map(|m| m.remove("uid"));
    let err = desired_objects(&cluster(v), &inputs()).expect_err("uid required");
    assert_eq!(
        err,
        BuildError::MissingMetadata {
            field: "metadata.uid"
        }
    );
}

#[test]
fn a_user_annotation_that_sessionplane_sets_is_refused() {
    let mut v = cluster_json("Store", Affinity::ClientIp, Provider::Nginx);
    v["spec"]["routing"]["annotations"] =
        json!({"nginx.ingress.kubernetes.io/upstream-hash-by": "$host", "team": "web"});
    let err = desired_objects(&cluster(v), &inputs()).expect_err("conflict");
    assert_eq!(err.label(), "annotation_conflict");
    assert!(
        err.to_string().contains("spec.routing.annotations"),
        "{err}"
    );

    let mut v = cluster_json("Store", Affinity::ClientIp, Provider::Nginx);
    v["spec"]["routing"]["annotations"] = json!({"team": "web"});
    let objs = desired_objects(&cluster(v), &inputs()).expect("builds");
    assert_eq!(
        annotations(find(&objs, "Ingress", "shop-frontend"))["team"],
        "web"
    );
}

#[test]
fn invalid_names_are_rejected_before_anything_is_built() {
    for name in ["a-name-that-is-far-too-long-for-derived-objects", "9lives"] {
        let mut v = cluster_json("Store", Affinity::None, Provider::Service);
        v["metadata"]["name"] = json!(name);
        let err = desired_objects(&cluster(v), &inputs()).expect_err(name);
        assert!(err.to_string().starts_with("metadata.name"), "{err}");
    }
}

#[test]
fn frontend_selector_string_matches_the_deployment_selector() {
    let objs = desired_objects(
        &cluster(cluster_json("Store", Affinity::None, Provider::Service)),
        &inputs(),
    )
    .expect("builds");
    let sel = &find(&objs, "Deployment", "shop-frontend")["spec"]["selector"]["matchLabels"];
    let text: Vec<String> = sel
        .as_object()
        .expect("map")
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    assert_eq!(frontend_selector("shop"), text.join(","));
}

mod durations {
    use super::super::routing::gateway::duration;
    use proptest::prelude::*;

    fn parse(d: &str) -> i64 {
        let mut total = 0;
        let mut num = 0;
        for c in d.chars() {
            match c {
                '0'..='9' => num = num * 10 + i64::from(c as u8 - b'0'),
                'h' => {
                    total += num * 3600;
                    num = 0
                }
                'm' => {
                    total += num * 60;
                    num = 0
                }
                's' => {
                    total += num;
                    num = 0
                }
                _ => panic!("unexpected {c} in {d}"),
            }
        }
        total
    }

    #[test]
    fn examples() {
        assert_eq!(duration(3600), "1h");
        assert_eq!(duration(90061), "25h1m1s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(31_536_000), "8760h");
    }

    proptest! {
        #[test]
        fn every_cookie_lifetime_is_a_valid_gateway_duration(s in 1i64..=31_536_000) {
            let d = duration(s);
            let re = regex::Regex::new("^([0-9]{1,5}(h|m|s|ms)){1,4}$").expect("regex");
            prop_assert!(re.is_match(&d), "{}", d);
            prop_assert_eq!(parse(&d), s);
        }
    }
}

mod random_specs {
    use super::*;
    use proptest::prelude::*;

    fn name() -> impl proptest::strategy::Strategy<Value = String> {
        "[a-z]([-a-z0-9]{0,38}[a-z0-9])?"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any name and sizes the schema admits build, deterministically,
        /// into objects whose names fit in 63 characters.
        #[test]
        fn admitted_specs_build_deterministically(
            name in name(),
            strategy in 0usize..4,
            affinity in 0usize..7,
            store_replicas in 1i32..=256,
            rf_seed in 1i32..=5,
            partitions in 16i32..=16384,
            frontend_replicas in 0i32..=1000,
            ttl in 1i64..=31_536_000,
        ) {
            let strategy = STRATEGIES[strategy];
            let a = AFFINITIES[affinity];
            prop_assume!(expressible(strategy, a, Provider::Nginx));
            let mut v = cluster_json(strategy, a, Provider::Nginx);
            v["metadata"]["name"] = json!(name);
            v["spec"]["frontend"]["replicas"] = json!(frontend_replicas);
            v["spec"]["store"] = json!({
                "replicas": store_replicas,
                "replicationFactor": rf_seed.min(store_replicas),
                "partitions": partitions,
            });
            v["spec"]["sessions"] = json!({"defaultTTLSeconds": ttl});
            if strategy == "Client" {
                // Keep the keyring window above the TTL (90 days × 15 keys).
                v["spec"]["client"] = json!({"rotationIntervalSeconds": 7_776_000, "retainedKeys": 16});
            }
            let sc: SessionCluster = serde_json::from_value(v).expect("fixture");
            let first = desired_objects(&sc, &inputs()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let second = desired_objects(&sc, &inputs()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&first, &second);
            for d in &first {
                prop_assert!(d.name.len() <= 63, "{}", d.name);
            }
            let dep = find(&first, "Deployment", &names::frontend(&name));
            prop_assert_eq!(&dep["spec"]["replicas"], &json!(frontend_replicas));
        }
    }
}

fn sticky_pod(extra: impl FnOnce(&mut Value)) -> (Vec<Desired>, Value) {
    let mut v = cluster_json("Sticky", Affinity::ClientIp, Provider::Service);
    extra(&mut v);
    let objs = desired_objects(&cluster(v), &inputs()).expect("builds");
    let pod = find(&objs, "Deployment", "shop-frontend")["spec"]["template"]["spec"].clone();
    (objs, pod)
}

#[test]
fn a_sticky_pod_is_given_the_handoff_grace_and_its_agent_a_data_dir() {
    let (objs, pod) = sticky_pod(|_| {});
    assert_eq!(
        pod["terminationGracePeriodSeconds"], 120,
        "default handoff grace"
    );
    let agent = &pod["initContainers"][0];
    let agent_env = agent["env"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        env_value(&agent_env, "SESSIONPLANE_HANDOFF_SECONDS").expect("handoff")["value"],
        "115",
        "the agent gives up a little before the kubelet kills it"
    );
    assert_eq!(
        env_value(&agent_env, "SESSIONPLANE_DATA_DIR").expect("data dir")["value"],
        agent::AGENT_DATA_DIR
    );
    assert_eq!(
        agent["volumeMounts"],
        json!([{"name": agent::AGENT_DATA_VOLUME, "mountPath": agent::AGENT_DATA_DIR}])
    );
    assert_eq!(
        pod["volumes"],
        json!([{"name": agent::AGENT_DATA_VOLUME, "emptyDir": {}}])
    );
    assert_eq!(agent["readinessProbe"]["httpGet"]["path"], "/readyz");
    let config = find(&objs, "ConfigMap", "shop-config");
    assert_eq!(
        config["data"]["SESSIONPLANE_REPLICATION_FACTOR"], "1",
        "issue 7: one copy by default"
    );
}

#[test]
fn the_sticky_grace_is_the_longer_of_the_template_and_the_handoff() {
    let (_, pod) = sticky_pod(|v| {
        v["spec"]["sticky"] = json!({"replicationFactor": 2, "handoffGracePeriodSeconds": 30});
    });
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    let (objs, pod) = sticky_pod(|v| {
        v["spec"]["sticky"] = json!({"handoffGracePeriodSeconds": 30});
        v["spec"]["frontend"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(300);
    });
    assert_eq!(
        pod["terminationGracePeriodSeconds"], 300,
        "the user's longer grace stays"
    );
    let config = find(&objs, "ConfigMap", "shop-config");
    assert_eq!(config["data"]["SESSIONPLANE_REPLICATION_FACTOR"], "1");
    // Other strategies leave the user's grace alone.
    let objs = desired_objects(
        &cluster(cluster_json(
            "Replicated",
            Affinity::None,
            Provider::Service,
        )),
        &inputs(),
    )
    .expect("builds");
    let pod = &find(&objs, "Deployment", "shop-frontend")["spec"]["template"]["spec"];
    assert!(pod["terminationGracePeriodSeconds"].is_null());
}
