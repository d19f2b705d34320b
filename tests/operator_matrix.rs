//! Every strategy × affinity × provider combination against the real kube-apiserver (with
//! the Gateway API and Envoy Gateway CRDs, so routes are validated by their real schemas):
//! the operator creates the objects each one needs, with the right fields. Plus: every
//! example reconciles, and routing changes are followed, with the objects no longer
//! needed pruned.
//!
//! Needs the local control plane: `bash hack/cluster.sh up && eval "$(bash hack/cluster.sh env)"`.

mod operator_support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use operator_support::*;
use serde_json::{json, Value};

fn get<'a>(objs: &'a Owned, kind: &str, name: &str) -> Option<&'a Value> {
    objs.get(&(kind.to_owned(), name.to_owned()))
}

fn kinds_of(objs: &Owned, kind: &str) -> usize {
    objs.keys().filter(|(k, _)| k == kind).count()
}

struct Routing {
    tag: &'static str,
    routing: Value,
}

fn routings() -> Vec<Routing> {
    let gw = |affinity: Value| {
        json!({"affinity": affinity,
               "provider": {"type": "GatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "web"}]}},
               "host": "shop.example.com"})
    };
    let ing = |affinity: Value, dialect: &str| {
        json!({"affinity": affinity,
               "provider": {"type": "Ingress", "ingress": {"className": "edge", "dialect": dialect}},
               "host": "shop.example.com"})
    };
    let cookie = json!({"mode": "Cookie", "cookie": {"name": "sid", "maxAgeSeconds": 3600,
                                                     "sameSite": "Lax", "secure": true}});
    vec![
        Routing {
            tag: "svc-none",
            routing: json!({"affinity": {"mode": "None"}, "provider": {"type": "Service"}}),
        },
        Routing {
            tag: "svc-ip",
            routing: json!({"affinity": {"mode": "ClientIP", "clientIPTimeoutSeconds": 600},
                            "provider": {"type": "Service"}}),
        },
        Routing {
            tag: "ngx-ip",
            routing: ing(json!({"mode": "ClientIP"}), "Nginx"),
        },
        Routing {
            tag: "ngx-cookie",
            routing: ing(cookie.clone(), "Nginx"),
        },
        Routing {
            tag: "ngx-hash",
            routing: ing(
                json!({"mode": "Hash", "hash": {"source": "Header", "name": "X-User"}}),
                "Nginx",
            ),
        },
        Routing {
            tag: "tfk-cookie",
            routing: ing(
                json!({"mode": "Cookie", "cookie": {"name": "sid", "sameSite": "Strict"}}),
                "Traefik",
            ),
        },
        Routing {
            tag: "tfk-none",
            routing: ing(json!({"mode": "None"}), "Traefik"),
        },
        Routing {
            tag: "hap-ip",
            routing: ing(json!({"mode": "ClientIP"}), "HAProxy"),
        },
        Routing {
            tag: "hap-cookie",
            routing: ing(cookie.clone(), "HAProxy"),
        },
        Routing {
            tag: "hap-hash",
            routing: ing(
                json!({"mode": "Hash", "hash": {"source": "Query", "name": "uid"}}),
                "HAProxy",
            ),
        },
        Routing {
            tag: "gw-none",
            routing: gw(json!({"mode": "None"})),
        },
        Routing {
            tag: "gw-hash-header",
            routing: gw(json!({"mode": "Hash", "hash": {"source": "Header", "name": "X-User"}})),
        },
        Routing {
            tag: "gw-hash-query",
            routing: gw(json!({"mode": "Hash", "hash": {"source": "Query", "name": "uid"}})),
        },
        Routing {
            tag: "gw-ip",
            routing: gw(json!({"mode": "ClientIP"})),
        },
        Routing {
            tag: "gw-cookie",
            routing: gw(json!({"mode": "Cookie", "cookie": {"name": "sid", "maxAgeSeconds": 600}})),
        },
        Routing {
            tag: "gw-hash",
            routing: gw(json!({"mode": "Hash", "hash": {"source": "Cookie", "name": "sid"}})),
        },
    ]
}

fn spec_for(strategy: &str, routing: &Value) -> Value {
    let mut sc = base_spec(strategy);
    sc["spec"]["frontend"]["replicas"] = json!(1);
    sc["spec"]["routing"] = routing.clone();
    if strategy == "Store" {
        sc["spec"]["store"] = json!({"replicas": 1, "replicationFactor": 1, "partitions": 64});
    }
    sc
}

fn annotations(obj: &Value) -> BTreeMap<String, String> {
    obj["metadata"]["annotations"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks one SessionCluster's objects; returns the problems found.
fn check(name: &str, strategy: &str, tag: &str, uid: &str, objs: &Owned) -> Vec<String> {
    let mut bad = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            bad.push(format!("{name}: {what}"));
        }
    };
    for ((kind, oname), obj) in objs {
        let owner_ok = obj["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|rs| {
                rs.iter()
                    .any(|r| r["uid"] == uid && r["controller"] == true)
            });
        expect(
            owner_ok,
            format!("{kind} {oname} is not controlled by the SessionCluster"),
        );
        expect(
            obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "sessionplane",
            format!("{kind} {oname} lacks the managed-by label"),
        );
    }
    let fe = format!("{name}-frontend");
    let Some(dep) = get(objs, "Deployment", &fe) else {
        expect(false, format!("{name}: no Deployment {fe}"));
        return bad;
    };
    let pod = &dep["spec"]["template"]["spec"];
    let web = pod["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "web"));
    expect(web.is_some(), "the user's container is missing".into());
    let env: Vec<String> = web
        .and_then(|w| w["env"].as_array())
        .map(|e| {
            e.iter()
                .filter_map(|v| v["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    expect(
        get(objs, "ConfigMap", &format!("{name}-config")).is_some(),
        "no ConfigMap".into(),
    );
    let Some(svc) = get(objs, "Service", &fe) else {
        expect(false, format!("{name}: no frontend Service"));
        return bad;
    };
    expect(
        svc["spec"]["ports"][0]["targetPort"] == 8080,
        format!("Service targetPort: {}", svc["spec"]["ports"]),
    );

    let has_agent = pod["initContainers"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["name"] == "sessionplane-agent" && c["restartPolicy"] == "Always")
    });
    match strategy {
        "Store" => {
            let sts = get(objs, "StatefulSet", &format!("{name}-store"));
            expect(
                sts.is_some_and(|s| s["spec"]["replicas"] == 1),
                "no StatefulSet with 1 replica".into(),
            );
            expect(
                get(objs, "Service", &format!("{name}-store")).is_some(),
                "no store client Service".into(),
            );
            let headless = get(objs, "Service", &format!("{name}-store-headless"));
            expect(
                headless.is_some_and(|s| s["spec"]["clusterIP"] == "None"),
                "no headless store Service".into(),
            );
            expect(
                get(objs, "PodDisruptionBudget", &format!("{name}-store")).is_some(),
                "no PDB".into(),
            );
            expect(
                get(objs, "Secret", &format!("{name}-store-auth")).is_some(),
                "no store-auth Secret".into(),
            );
            expect(
                env.iter().any(|e| e == "SESSIONPLANE_STORE_ADDR")
                    && env.iter().any(|e| e == "REDIS_URL"),
                format!("store address not injected: {env:?}"),
            );
            expect(!has_agent, "agent sidecar with strategy Store".into());
        }
        "Sticky" | "Replicated" => {
            expect(has_agent, "no agent sidecar".into());
            let peers = get(objs, "Service", &format!("{name}-peers"));
            expect(
                peers.is_some_and(|s| s["spec"]["clusterIP"] == "None"),
                "no headless peers Service".into(),
            );
            expect(
                get(objs, "Secret", &format!("{name}-store-auth")).is_some(),
                "no agent password Secret".into(),
            );
            expect(
                kinds_of(objs, "StatefulSet") == 0,
                "a StatefulSet without strategy Store".into(),
            );
        }
        "Client" => {
            let ring = get(objs, "Secret", &format!("{name}-keyring"));
            expect(
                ring.is_some_and(|s| s["data"]["key-1"].as_str().is_some_and(|k| k.len() == 44)),
                "no keyring Secret with a 32-byte key-1".into(),
            );
            let mounted = pod["volumes"].as_array().is_some_and(|vs| {
                vs.iter()
                    .any(|v| v["secret"]["secretName"] == format!("{name}-keyring"))
            });
            expect(mounted, "keyring not mounted".into());
            expect(
                kinds_of(objs, "StatefulSet") == 0,
                "a StatefulSet with strategy Client".into(),
            );
            expect(
                get(objs, "Secret", &format!("{name}-store-auth")).is_none(),
                "a store password with Client".into(),
            );
            expect(!has_agent, "agent sidecar with strategy Client".into());
        }
        other => expect(false, format!("unknown strategy {other}")),
    }

    let ingress = get(objs, "Ingress", &fe);
    let route = get(objs, "HTTPRoute", &fe);
    let btp = get(objs, "BackendTrafficPolicy", &fe);
    let ing_ann = ingress.map(annotations).unwrap_or_default();
    let ngx = |k: &str| {
        ing_ann
            .get(&format!("nginx.ingress.kubernetes.io/{k}"))
            .cloned()
            .unwrap_or_default()
    };
    let provider = tag.split('-').next().unwrap_or_default();
    expect(
        ingress.is_some() == matches!(provider, "ngx" | "tfk" | "hap"),
        format!("Ingress presence for {tag}"),
    );
    expect(
        route.is_some() == (provider == "gw"),
        format!("HTTPRoute presence for {tag}"),
    );
    expect(
        btp.is_some() == (tag == "gw-ip" || tag.starts_with("gw-hash")),
        format!("BackendTrafficPolicy presence for {tag}"),
    );
    if let Some(ing) = ingress {
        expect(
            ing["spec"]["ingressClassName"] == "edge",
            "ingressClassName".into(),
        );
        expect(
            ing["spec"]["rules"][0]["host"] == "shop.example.com",
            "Ingress host".into(),
        );
    }
    match tag {
        "svc-none" => expect(
            svc["spec"]["sessionAffinity"] == "None",
            "sessionAffinity None".into(),
        ),
        "svc-ip" => {
            expect(
                svc["spec"]["sessionAffinity"] == "ClientIP",
                "sessionAffinity ClientIP".into(),
            );
            expect(
                svc["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] == 600,
                "ClientIP timeout 600".into(),
            );
        }
        "ngx-ip" => expect(
            ngx("upstream-hash-by") == "$remote_addr",
            format!("nginx hash: {ing_ann:?}"),
        ),
        "ngx-cookie" => {
            expect(
                ngx("affinity") == "cookie",
                format!("nginx affinity: {ing_ann:?}"),
            );
            expect(ngx("session-cookie-name") == "sid", "cookie name".into());
            expect(
                ngx("session-cookie-max-age") == "3600",
                "cookie max-age".into(),
            );
            expect(
                ngx("session-cookie-samesite") == "Lax",
                "cookie samesite".into(),
            );
            expect(
                ngx("session-cookie-secure") == "true",
                "cookie secure".into(),
            );
        }
        "ngx-hash" => expect(
            ngx("upstream-hash-by") == "$http_x_user",
            format!("nginx header hash: {ing_ann:?}"),
        ),
        "tfk-cookie" => {
            let sa = annotations(svc);
            let t = "traefik.ingress.kubernetes.io/service.sticky.cookie";
            expect(
                sa.get(t).map(String::as_str) == Some("true"),
                format!("traefik sticky on the Service: {sa:?}"),
            );
            expect(
                sa.get(&format!("{t}.name")).map(String::as_str) == Some("sid"),
                "traefik cookie name".into(),
            );
            expect(
                sa.get(&format!("{t}.samesite")).map(String::as_str) == Some("strict"),
                "traefik samesite".into(),
            );
        }
        "tfk-none" => {
            let sa = annotations(svc);
            expect(
                ing_ann.is_empty() && !sa.keys().any(|k| k.starts_with("traefik.")),
                format!("no affinity annotations: {ing_ann:?} {sa:?}"),
            );
        }
        "hap-ip" => expect(
            ing_ann
                .get("haproxy-ingress.github.io/balance-algorithm")
                .map(String::as_str)
                == Some("source"),
            format!("haproxy balance: {ing_ann:?}"),
        ),
        "hap-cookie" => {
            let hap = |k: &str| {
                ing_ann
                    .get(&format!("haproxy-ingress.github.io/{k}"))
                    .cloned()
                    .unwrap_or_default()
            };
            expect(
                hap("affinity") == "cookie",
                format!("haproxy affinity: {ing_ann:?}"),
            );
            expect(
                hap("session-cookie-name") == "sid",
                "haproxy cookie name".into(),
            );
            expect(
                hap("session-cookie-keywords")
                    == "indirect nocache httponly secure attr SameSite=Lax attr Max-Age=3600",
                format!("haproxy cookie keywords: {ing_ann:?}"),
            );
        }
        "gw-none" => {
            let rule = route.map(|r| &r["spec"]["rules"][0]);
            expect(
                rule.is_some_and(|r| {
                    r["sessionPersistence"].is_null() && r["backendRefs"][0]["name"] == fe.as_str()
                }),
                format!("a plain HTTPRoute rule: {rule:?}"),
            );
        }
        "gw-hash-header" | "gw-hash-query" => {
            let h = btp.map(|b| &b["spec"]["loadBalancer"]["consistentHash"]);
            let ok = if tag == "gw-hash-header" {
                h.is_some_and(|h| h["type"] == "Headers" && h["headers"][0]["name"] == "X-User")
            } else {
                h.is_some_and(|h| {
                    h["type"] == "QueryParams" && h["queryParams"][0]["name"] == "uid"
                })
            };
            expect(ok, format!("BackendTrafficPolicy consistentHash: {h:?}"));
        }
        "hap-hash" => expect(
            ing_ann
                .get("haproxy-ingress.github.io/balance-algorithm")
                .map(String::as_str)
                == Some("url_param uid"),
            format!("haproxy balance: {ing_ann:?}"),
        ),
        "gw-cookie" => {
            let r = route.map(|r| &r["spec"]);
            let p = r.map(|r| &r["rules"][0]["sessionPersistence"]);
            expect(
                p.is_some_and(|p| p["type"] == "Cookie" && p["sessionName"] == "sid"),
                format!("sessionPersistence: {p:?}"),
            );
            expect(
                p.is_some_and(|p| p["absoluteTimeout"] == "10m"),
                "absoluteTimeout 10m".into(),
            );
            expect(
                r.is_some_and(|r| r["hostnames"][0] == "shop.example.com"),
                "hostnames".into(),
            );
        }
        "gw-ip" | "gw-hash" => {
            let r = route.map(|r| &r["spec"]);
            expect(
                r.is_some_and(|r| r["parentRefs"][0]["name"] == "web"),
                "parentRefs".into(),
            );
            expect(
                r.is_some_and(|r| r["rules"][0]["backendRefs"][0]["name"] == fe.as_str()),
                "backendRefs".into(),
            );
            let h = btp.map(|b| &b["spec"]["loadBalancer"]);
            let want = if tag == "gw-ip" { "SourceIP" } else { "Cookie" };
            expect(
                h.is_some_and(|h| {
                    h["type"] == "ConsistentHash" && h["consistentHash"]["type"] == want
                }),
                format!("BackendTrafficPolicy hash {want}: {h:?}"),
            );
            expect(
                btp.is_some_and(|b| b["spec"]["targetRefs"][0]["name"] == fe.as_str()),
                "BackendTrafficPolicy targets the HTTPRoute".into(),
            );
            if tag == "gw-hash" {
                expect(
                    h.is_some_and(|h| h["consistentHash"]["cookie"]["name"] == "sid"),
                    "hash cookie name".into(),
                );
            }
        }
        other => expect(false, format!("unknown routing {other}")),
    }
    bad
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_strategy_affinity_and_provider_gets_its_objects() {
    let client = client().await;
    ensure_crd(&client).await;
    let ns = TestNs::new(&client, "op-matrix").await;
    let op = start_leader(&client, &ns.name).await;

    let mut cases = Vec::new();
    for strategy in ["Store", "Sticky", "Replicated", "Client"] {
        for r in routings() {
            if strategy == "Sticky" && r.tag.ends_with("-none") {
                continue; // rejected: Sticky needs affinity (tested in operator_api)
            }
            let name = format!("{}-{}", strategy.to_lowercase(), r.tag);
            let created = ns
                .create_sc(&name, spec_for(strategy, &r.routing))
                .await
                .unwrap_or_else(|e| panic!("{name} rejected: {e}"));
            cases.push((name, strategy, r.tag, created.metadata.uid.unwrap()));
        }
    }
    assert_eq!(cases.len(), 16 * 4 - 3);

    // Wait until every one is reconciled, then check each.
    wait_for(
        "every SessionCluster to be reconciled",
        Duration::from_secs(180),
        || async {
            let list = ns
                .sessionclusters()
                .list(&ListParams::default())
                .await
                .ok()?;
            let done = list
                .items
                .iter()
                .filter(|sc| {
                    let v = serde_json::to_value(sc).unwrap_or_default();
                    v["status"]["observedGeneration"] == v["metadata"]["generation"]
                        && !v["metadata"]["generation"].is_null()
                })
                .count();
            (done == cases.len()).then_some(())
        },
    )
    .await;
    let mut problems = Vec::new();
    for (name, strategy, tag, uid) in &cases {
        let objs = owned(&ns, name).await;
        problems.extend(check(name, strategy, tag, uid, &objs));
        let sc = ns
            .get("sessionplane.dev/v1alpha1", "SessionCluster", name)
            .await
            .unwrap();
        if sc["status"]["phase"] != "Pending" {
            problems.push(format!(
                "{name}: phase {} (no pod can be ready: expected Pending)",
                sc["status"]["phase"]
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );

    // The operator said what it did, on the SessionCluster.
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let created: Vec<_> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Created") && e.type_.as_deref() == Some("Normal"))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("store-gw-hash"))
        .filter_map(|e| e.note)
        .collect();
    for want in [
        "created Deployment store-gw-hash-frontend",
        "created BackendTrafficPolicy store-gw-hash-frontend",
    ] {
        assert!(
            created.iter().any(|n| n == want),
            "no Event {want:?} in {created:?}"
        );
    }

    op.stop().await.unwrap();
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_reconciles() {
    let client = client().await;
    ensure_crd(&client).await;
    let ns = TestNs::new(&client, "op-examples-run").await;
    let op = start_leader(&client, &ns.name).await;
    let dir = repo_root().join("manifests/examples");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let rel = path
            .strip_prefix(repo_root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut obj = manifest(&rel);
        obj["metadata"]["namespace"] = json!(ns.name);
        let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
        let dynobj: DynamicObject = serde_json::from_value(obj).unwrap();
        ns.sessionclusters()
            .patch(
                &name,
                &PatchParams::apply("sessionplane-tests"),
                &Patch::Apply(&dynobj),
            )
            .await
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        names.push(name);
    }
    for name in &names {
        let sc = reconciled(&ns, name, Duration::from_secs(120)).await;
        assert_ne!(sc["status"]["phase"], "Invalid", "{name}: {}", sc["status"]);
        assert_ne!(
            sc["status"]["phase"], "Degraded",
            "{name}: {}",
            sc["status"]
        );
        let objs = owned(&ns, name).await;
        assert!(
            get(&objs, "Deployment", &format!("{name}-frontend")).is_some(),
            "{name}: no frontend Deployment among {:?}",
            objs.keys().collect::<Vec<_>>()
        );
    }
    op.stop().await.unwrap();
    ns.cleanup().await;
}

/// Changing the affinity and the provider replaces the routing objects: the new ones
/// are applied, the old ones pruned; changing the strategy prunes the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_and_strategy_changes_are_followed_and_pruned() {
    let client = client().await;
    ensure_crd(&client).await;
    let ns = TestNs::new(&client, "op-change").await;
    let op = start_leader(&client, &ns.name).await;
    let routing = |tag: &str| {
        routings()
            .into_iter()
            .find(|r| r.tag == tag)
            .unwrap()
            .routing
    };
    ns.create_sc("web", spec_for("Store", &routing("svc-none")))
        .await
        .unwrap();

    let wait = |what: &'static str, f: fn(&Owned) -> bool| {
        let ns = &ns;
        async move {
            wait_for(what, Duration::from_secs(30), || async {
                let o = owned(ns, "web").await;
                f(&o).then_some(o)
            })
            .await
        }
    };
    wait("the Store objects", |o| {
        get(o, "StatefulSet", "web-store").is_some()
    })
    .await;

    ns.patch_sc("web", json!({"spec": {"routing": routing("svc-ip")}}))
        .await
        .unwrap();
    wait("sessionAffinity ClientIP", |o| {
        get(o, "Service", "web-frontend")
            .is_some_and(|s| s["spec"]["sessionAffinity"] == "ClientIP")
    })
    .await;

    // JSON merge patch replaces the whole routing object (nulls clear what is gone).
    let mut to_ingress = routing("ngx-cookie");
    to_ingress["affinity"]["clientIPTimeoutSeconds"] = Value::Null;
    ns.patch_sc("web", json!({"spec": {"routing": to_ingress}}))
        .await
        .unwrap();
    wait(
        "an Ingress with cookie affinity and the Service back to None",
        |o| {
            get(o, "Ingress", "web-frontend").is_some_and(|i| {
                i["metadata"]["annotations"]["nginx.ingress.kubernetes.io/affinity"] == "cookie"
            }) && get(o, "Service", "web-frontend")
                .is_some_and(|s| s["spec"]["sessionAffinity"] == "None")
        },
    )
    .await;

    let mut to_gateway = routing("gw-hash");
    to_gateway["provider"]["ingress"] = Value::Null;
    to_gateway["affinity"]["cookie"] = Value::Null;
    ns.patch_sc("web", json!({"spec": {"routing": to_gateway}}))
        .await
        .unwrap();
    wait(
        "HTTPRoute and BackendTrafficPolicy in, Ingress pruned",
        |o| {
            get(o, "Ingress", "web-frontend").is_none()
                && get(o, "HTTPRoute", "web-frontend").is_some()
                && get(o, "BackendTrafficPolicy", "web-frontend").is_some()
        },
    )
    .await;

    let to_client = json!({"spec": {
        "strategy": "Client",
        "routing": {"affinity": {"mode": "None", "hash": null},
                    "provider": {"type": "Service", "gatewayAPI": null}, "host": null}
    }});
    ns.patch_sc("web", to_client).await.unwrap();
    let o = wait("store, password and routes pruned; keyring in", |o| {
        get(o, "StatefulSet", "web-store").is_none()
            && get(o, "PodDisruptionBudget", "web-store").is_none()
            && get(o, "Service", "web-store").is_none()
            && get(o, "Service", "web-store-headless").is_none()
            && get(o, "Secret", "web-store-auth").is_none()
            && get(o, "HTTPRoute", "web-frontend").is_none()
            && get(o, "BackendTrafficPolicy", "web-frontend").is_none()
            && get(o, "Secret", "web-keyring").is_some()
    })
    .await;
    let kinds: Vec<_> = o.keys().map(|(k, n)| format!("{k}/{n}")).collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap/web-config",
            "Deployment/web-frontend",
            "Secret/web-keyring",
            "Service/web-frontend"
        ],
    );
    op.stop().await.unwrap();
    ns.cleanup().await;
}

/// The SessionCluster once its status describes its current generation.
async fn reconciled(ns: &TestNs, name: &str, timeout: Duration) -> Value {
    wait_for(&format!("{name} reconciled"), timeout, || async {
        let sc = ns
            .get("sessionplane.dev/v1alpha1", "SessionCluster", name)
            .await?;
        (sc["status"]["observedGeneration"] == sc["metadata"]["generation"]).then_some(sc)
    })
    .await
}

/// The routing placement the operator remembers in the status, and the RoutingRemapped
/// condition with its observedGeneration and message.
async fn remembered(ns: &TestNs, name: &str) -> (Value, Option<Value>) {
    let sc = ns
        .get("sessionplane.dev/v1alpha1", "SessionCluster", name)
        .await
        .unwrap_or_default();
    let cond = sc["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "RoutingRemapped").cloned());
    (sc["status"]["routing"].clone(), cond)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routing_change_that_remaps_hashed_users_is_warned() {
    let client = client().await;
    ensure_crd(&client).await;
    let ns = TestNs::new(&client, "op-remap").await;
    let op = start_leader(&client, &ns.name).await;
    let routing = |tag: &str| {
        routings()
            .into_iter()
            .find(|r| r.tag == tag)
            .unwrap()
            .routing
    };
    ns.create_sc("web", spec_for("Client", &routing("ngx-hash")))
        .await
        .unwrap();
    let first = wait_for(
        "the placement remembered",
        Duration::from_secs(30),
        || async {
            let (placement, cond) = remembered(&ns, "web").await;
            let want =
                json!({"provider": "Ingress/Nginx", "affinity": "Hash", "key": "header X-User"});
            (placement == want).then_some(cond)
        },
    )
    .await;
    assert!(first.is_none(), "a new cluster remaps nobody: {first:?}");

    // A new host is not a new placement: nothing to say.
    ns.patch_sc(
        "web",
        json!({"spec": {"routing": {"host": "other.example.com"}}}),
    )
    .await
    .unwrap();
    reconciled(&ns, "web", Duration::from_secs(30)).await;
    assert!(remembered(&ns, "web").await.1.is_none());

    // Same header, another provider: every hashed user lands elsewhere.
    let mut to_gateway = routing("gw-hash");
    to_gateway["provider"]["ingress"] = Value::Null;
    to_gateway["affinity"]["hash"] = json!({"source": "Header", "name": "X-User"});
    ns.patch_sc("web", json!({"spec": {"routing": to_gateway}}))
        .await
        .unwrap();
    let generation = ns
        .get("sessionplane.dev/v1alpha1", "SessionCluster", "web")
        .await
        .unwrap()["metadata"]["generation"]
        .clone();
    let cond = wait_for("RoutingRemapped True", Duration::from_secs(30), || async {
        let (placement, cond) = remembered(&ns, "web").await;
        (placement["provider"] == "GatewayAPI")
            .then_some(cond)
            .flatten()
    })
    .await;
    assert_eq!(cond["status"], "True", "{cond}");
    assert_eq!(cond["reason"], "ProviderChanged", "{cond}");
    assert_eq!(cond["observedGeneration"], generation, "{cond}");
    let message = cond["message"].as_str().unwrap_or_default();
    for want in [
        "Ingress/Nginx with affinity Hash on header X-User -> GatewayAPI with affinity Hash on header X-User",
        "remapped",
        "strategy Client: nothing is lost",
    ] {
        assert!(message.contains(want), "{want:?} not in {message:?}");
    }
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let warned = wait_for(
        "the ProviderChanged Event",
        Duration::from_secs(30),
        || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            let notes: Vec<String> = list
                .items
                .into_iter()
                .filter(|e| {
                    e.reason.as_deref() == Some("ProviderChanged")
                        && e.type_.as_deref() == Some("Warning")
                })
                .filter_map(|e| e.note)
                .collect();
            (!notes.is_empty()).then_some(notes)
        },
    )
    .await;
    assert_eq!(warned, vec![message.to_owned()]);
    assert_eq!(
        counter(
            &scrape(op.metrics_addr),
            "sessionplane_operator_routing_remaps_total{reason=\"ProviderChanged\"}"
        ),
        1
    );

    // The next reconciles keep the condition and warn no more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    ns.patch_sc("web", json!({"spec": {"frontend": {"replicas": 2}}}))
        .await
        .unwrap();
    reconciled(&ns, "web", Duration::from_secs(30)).await;
    // (A reconcile that still saw the old status in its cache may have set the condition a
    // second later: the time is not compared.)
    let kept = remembered(&ns, "web").await.1.unwrap_or_default();
    for field in ["status", "reason", "message", "observedGeneration"] {
        assert_eq!(kept[field], cond[field], "{field}: {kept}");
    }
    assert_eq!(
        counter(
            &scrape(op.metrics_addr),
            "sessionplane_operator_routing_remaps_total{reason=\"ProviderChanged\"}"
        ),
        1
    );
    op.stop().await.unwrap();
    ns.cleanup().await;
}
