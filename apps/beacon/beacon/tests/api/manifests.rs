//! The Kubernetes manifests (`deploy/`) held to what they run, without a
//! cluster: every setting on a Beacon container is one its target accepts,
//! with a value it accepts; ports and probes are where the binary serves
//! them; every container is pinned, bounded, probed and locked down;
//! nats-server accepts its arguments and the ConfigMap's configuration; and
//! the NATS users it defines let each target do its job and nothing more,
//! shown with the real binary, the manifests' own settings and passwords
//! generated as `make up` generates them.

use std::{collections::BTreeMap, process::Command};

use async_nats::{
    ConnectOptions,
    jetstream::{self, consumer::push},
};
use beacon::Cli;
use futures::StreamExt;
use serde_json::Value;
use tempfile::TempDir;
use testkit::{AppProcess, NatsServer, eventually, nats_server_binary, output_within};

use super::helpers::{BEACON, PATIENCE, last_seq, page, range, wait_for_seq};
use testkit::{
    kustomize::{PART_OF, Rendered, deploy_dir, items, text},
    workloads::{
        self, APPS, Container, OVERLAYS, Passwords, assert_listens_where_ports_and_probes_point,
        assert_never_refused, container, containers, deployments, each_container_of, environment,
        expand, generate_passwords, local_command, login, overlay, parse_settings, publish_refused,
        run_job, spawn_local, start_nats, subscribe_refused,
    },
};

/// Runs `beacon`.
fn is_beacon(container: &Container) -> bool {
    container.binary() == Some("beacon")
}

/// Parses `env` as `beacon <target>` would and checks it as `main` does.
fn check_settings(target: &str, env: &BTreeMap<String, String>) -> Result<(), String> {
    let cli: Cli = parse_settings(target, env)?;
    cli.plan().map(|_| ()).map_err(|err| err.to_string())
}

#[test]
fn every_setting_on_a_beacon_container_is_one_its_target_accepts() {
    let mut targets: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    each_container_of("beacon", |name, _, container, env| {
        targets
            .entry(name)
            .or_default()
            .push(container.target().to_owned());
        for required in ["NATS_URL", "NATS_USER", "NATS_PASSWORD"] {
            assert!(
                env.contains_key(required),
                "{}: no {required}",
                container.workload
            );
        }
        if let Err(err) = check_settings(container.target(), &env) {
            panic!("{name}: {}: {err}\n{env:#?}", container.workload);
        }
    });
    for name in OVERLAYS {
        let mut found = targets.remove(name).unwrap_or_default();
        found.sort();
        assert_eq!(found, ["broadcaster", "provision", "receiver"], "{name}");
    }
}

#[test]
fn a_setting_the_binary_does_not_have_is_caught() {
    let mut env = BTreeMap::from([("NATS_URL".to_owned(), "nats://nats:4222".to_owned())]);
    assert_eq!(check_settings("receiver", &env), Ok(()));
    env.insert("BEACON_MIN_INTERVAL".to_owned(), "1s".to_owned());
    let err = check_settings("receiver", &env).unwrap_err();
    assert!(err.contains("BEACON_MIN_INTERVAL"), "{err}");
    env.remove("BEACON_MIN_INTERVAL");
    env.insert("BEACON_WINDOW".to_owned(), "lots".to_owned());
    assert!(check_settings("receiver", &env).is_err());
}

#[test]
fn beacon_listens_where_its_container_ports_and_probes_point() {
    each_container_of("beacon", |_, _, container, env| {
        if container.target() == "provision" {
            // A one-shot Job: it serves nothing.
            assert!(
                container.spec.get("ports").is_none(),
                "{}",
                container.workload
            );
        } else {
            assert_listens_where_ports_and_probes_point(
                container,
                &env,
                &[("BEACON_HTTP_ADDR", "http")],
            );
        }
    });
}

/// Whether a label selector (`matchLabels`, `matchExpressions` with `In`,
/// or a Service's plain map) selects pods labelled `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let plain = selector.get("matchLabels").unwrap_or(selector);
    let labels_match = plain
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| !["matchLabels", "matchExpressions"].contains(&key.as_str()))
        .all(|(key, value)| labels[key] == *value);
    let expressions_match = items(&selector["matchExpressions"]).iter().all(|expr| {
        assert_eq!(expr["operator"], "In", "{expr}");
        items(&expr["values"]).contains(&labels[text(&expr["key"])])
    });
    labels_match && expressions_match
}

/// The containers of the pods `selector` selects.
fn selected<'a>(rendered: &'a Rendered, selector: &Value) -> Vec<Container<'a>> {
    containers(rendered)
        .into_iter()
        .filter(|c| selects(selector, &c.pod["metadata"]["labels"]))
        .collect()
}

#[test]
fn services_ingresses_and_policies_point_at_ports_that_containers_open() {
    for (name, rendered) in deployments() {
        for resource in &rendered.resources {
            let what = format!(
                "{name}: {} {}",
                resource["kind"], resource["metadata"]["name"]
            );
            match text(&resource["kind"]) {
                "Service" => {
                    let pods = selected(&rendered, &resource["spec"]["selector"]);
                    assert!(!pods.is_empty(), "{what} selects no pod");
                    for port in items(&resource["spec"]["ports"]) {
                        for container in &pods {
                            container.port(&port["targetPort"]);
                        }
                    }
                }
                "Ingress" => {
                    for rule in items(&resource["spec"]["rules"]) {
                        for path in items(&rule["http"]["paths"]) {
                            let backend = &path["backend"]["service"];
                            let service = rendered.get("Service", text(&backend["name"]));
                            let ports = items(&service["spec"]["ports"]);
                            assert!(
                                ports.iter().any(|p| p["name"] == backend["port"]["name"]),
                                "{what}: {backend}"
                            );
                        }
                    }
                }
                "NetworkPolicy" => {
                    let pods = selected(&rendered, &resource["spec"]["podSelector"]);
                    assert!(!pods.is_empty(), "{what} selects no pod");
                    for rule in items(&resource["spec"]["ingress"]) {
                        for port in items(&rule["ports"]) {
                            let open = pods.iter().any(|c| {
                                items(&c.spec["ports"])
                                    .iter()
                                    .any(|p| p["containerPort"] == port["port"])
                            });
                            assert!(open, "{what}: no selected container opens {port}");
                        }
                    }
                }
                "HorizontalPodAutoscaler" | "PodDisruptionBudget" => {
                    let target = &resource["spec"]["scaleTargetRef"];
                    if target.is_object() {
                        rendered.get(text(&target["kind"]), text(&target["name"]));
                    } else {
                        let pods = selected(&rendered, &resource["spec"]["selector"]);
                        assert!(!pods.is_empty(), "{what} selects no pod");
                    }
                }
                _ => {}
            }
        }
    }
}

#[test]
fn every_container_is_pinned_bounded_probed_and_locked_down() {
    for (name, rendered) in deployments() {
        for container in containers(&rendered) {
            let what = format!(
                "{name}: {} container {}",
                container.workload,
                container.name()
            );
            let (spec, pod) = (container.spec, &container.pod["spec"]);

            let image = text(&spec["image"]);
            let tag = image
                .rsplit_once(':')
                .map(|(_, tag)| tag)
                .unwrap_or_default();
            assert!(
                !tag.is_empty() && !tag.contains('/'),
                "{what}: {image} has no tag"
            );
            assert_ne!(tag, "latest", "{what}: {image}");

            for bound in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    assert!(
                        !spec["resources"][bound][resource].is_null(),
                        "{what}: no {bound}.{resource}"
                    );
                }
            }

            // Jobs run to completion, and a client that opens no port (the
            // simulator) has nothing to probe; everything else is probed.
            if container.kind != "Job" && container.spec.get("ports").is_some() {
                for probe in ["livenessProbe", "readinessProbe"] {
                    assert!(spec[probe].is_object(), "{what}: no {probe}");
                }
            }

            let security = &spec["securityContext"];
            assert_eq!(security["allowPrivilegeEscalation"], false, "{what}");
            assert_eq!(security["readOnlyRootFilesystem"], true, "{what}");
            assert!(
                items(&security["capabilities"]["drop"]).contains(&"ALL".into()),
                "{what}"
            );
            let either = |field: &str| {
                let own = &security[field];
                if own.is_null() {
                    pod["securityContext"][field].clone()
                } else {
                    own.clone()
                }
            };
            assert_eq!(either("runAsNonRoot"), true, "{what}");
            assert_eq!(either("seccompProfile")["type"], "RuntimeDefault", "{what}");
            assert!(
                either("runAsUser").as_u64().is_some_and(|uid| uid > 0),
                "{what}"
            );

            assert_eq!(pod["automountServiceAccountToken"], false, "{what}");
            let account = rendered.get("ServiceAccount", text(&pod["serviceAccountName"]));
            assert_eq!(account["automountServiceAccountToken"], false, "{what}");
        }
    }
}

#[test]
fn every_object_is_the_platforms_or_one_apps() {
    for name in OVERLAYS {
        let rendered = overlay(name);
        let part_of = |labels: &Value| labels[PART_OF].as_str().map(str::to_owned);
        for resource in &rendered.resources {
            let what = format!(
                "{name}: {} {}",
                resource["kind"], resource["metadata"]["name"]
            );
            let part = part_of(&resource["metadata"]["labels"]);
            let part = part.unwrap_or_else(|| panic!("{what} has no {PART_OF} label"));
            assert!(
                part == "platform" || APPS.contains(&part.as_str()),
                "{what}: {PART_OF}={part}"
            );
            // Its pods and volumes go with it.
            for template in [&resource["spec"]["template"]]
                .into_iter()
                .chain(items(&resource["spec"]["volumeClaimTemplates"]))
                .filter(|template| template.is_object())
            {
                let inner = part_of(&template["metadata"]["labels"]);
                assert_eq!(inner.as_deref(), Some(part.as_str()), "{what}: template");
            }
        }
        for ((kind, object), labels) in &rendered.generated_labels {
            let part = labels.get(PART_OF).map(String::as_str).unwrap_or_default();
            assert!(
                part == "platform" || APPS.contains(&part),
                "{name}: generated {kind} {object}: {PART_OF}={part:?}"
            );
        }
    }
}

#[test]
fn each_app_alone_has_everything_its_pods_refer_to() {
    let dir = TempDir::new().unwrap();
    let passwords = generate_passwords(dir.path());
    for (name, rendered) in deployments() {
        let workloads = containers(&rendered);
        for app in APPS {
            let runs = workloads
                .iter()
                .any(|c| c.pod["metadata"]["labels"][PART_OF] == app);
            let asked = !name.contains("APPS=") || name.ends_with(&format!("APPS={app}"));
            assert_eq!(runs, asked, "{name}: runs {app}");
        }
        for container in &workloads {
            let what = format!("{name}: {}", container.workload);
            // Every ConfigMap, Secret and key its environment names.
            environment(container, &rendered, &passwords);
            for volume in items(&container.pod["spec"]["volumes"]) {
                if let Some(config) = volume["configMap"]["name"].as_str() {
                    assert!(
                        rendered.config_maps.contains_key(config),
                        "{what}: volume from ConfigMap {config}"
                    );
                }
                if let Some(secret) = volume["secret"]["secretName"].as_str() {
                    assert!(
                        rendered.secrets.contains_key(secret),
                        "{what}: volume from Secret {secret}"
                    );
                }
            }
        }
    }
}

#[test]
fn make_down_for_one_app_deletes_every_kind_the_app_has() {
    let makefile = std::fs::read_to_string(deploy_dir().join("minikube.mk")).unwrap();
    let kinds: Vec<&str> = makefile
        .lines()
        .find_map(|line| line.strip_prefix("APP_KINDS := "))
        .expect("deploy/minikube.mk sets APP_KINDS")
        .split(',')
        .collect();
    let plural = |kind: &str| {
        let kind = kind.to_lowercase();
        match kind.strip_suffix('y') {
            Some(stem) => format!("{stem}ies"),
            None if kind.ends_with('s') => format!("{kind}es"),
            None => format!("{kind}s"),
        }
    };
    for name in OVERLAYS {
        let rendered = overlay(name);
        let apps = rendered.only(&APPS);
        let platform = rendered.only(&[]);
        let mut needed: Vec<String> = Vec::new();
        for resource in &apps.resources {
            if !platform.resources.contains(resource) {
                needed.push(plural(text(&resource["kind"])));
                if !items(&resource["spec"]["volumeClaimTemplates"]).is_empty() {
                    needed.push(plural("PersistentVolumeClaim"));
                }
            }
        }
        for (kind, _) in apps.generated_labels.keys() {
            needed.push(plural(kind));
        }
        for kind in needed {
            assert!(
                kinds.contains(&kind.as_str()),
                "{name}: `make down APPS=...` leaves {kind} behind: add it to APP_KINDS"
            );
        }
    }
}

/// `key: value` of a top-level setting in a nats-server configuration.
fn nats_setting<'a>(config: &'a str, key: &str) -> &'a str {
    config
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
        .unwrap_or_else(|| panic!("nats.conf has no top-level {key}"))
}

#[test]
fn nats_server_accepts_its_arguments_and_configuration_in_every_overlay() {
    let dir = TempDir::new().unwrap();
    let passwords = generate_passwords(dir.path());
    for name in OVERLAYS {
        let rendered = overlay(name);
        let nats = containers(&rendered)
            .into_iter()
            .find(|c| c.name() == "nats")
            .expect("a nats container");
        let what = format!("{name}: {}", nats.workload);
        let env = environment(&nats, &rendered, &passwords);
        let config = &rendered.config_maps["nats-config"]["nats.conf"];

        assert_eq!(
            nats.spec["command"],
            serde_json::json!(["nats-server"]),
            "{what}"
        );
        assert_eq!(
            nats_setting(config, "port"),
            nats.port(&"client".into()).to_string()
        );
        assert_eq!(
            nats_setting(config, "http_port"),
            nats.port(&"monitor".into()).to_string()
        );
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            assert_eq!(
                nats.spec[probe]["httpGet"]["port"], "monitor",
                "{what}: {probe}"
            );
        }

        // Each mounted volume becomes a local directory holding what the pod
        // would see there, and the arguments point into it.
        let root = TempDir::new().unwrap();
        let mut args: Vec<String> = items(&nats.spec["args"])
            .iter()
            .map(|arg| expand(text(arg), &env))
            .collect();
        for mount in items(&nats.spec["volumeMounts"]) {
            let volume = text(&mount["name"]);
            let local = root.path().join(volume);
            std::fs::create_dir_all(&local).unwrap();
            let source = items(&nats.pod["spec"]["volumes"])
                .iter()
                .find(|v| v["name"] == volume);
            if let Some(config_map) = source.and_then(|v| v["configMap"]["name"].as_str()) {
                for (file, content) in &rendered.config_maps[config_map] {
                    std::fs::write(local.join(file), content).unwrap();
                }
            }
            for arg in &mut args {
                *arg = arg.replace(text(&mount["mountPath"]), local.to_str().unwrap());
            }
        }
        let output = output_within(
            Command::new(nats_server_binary())
                .args(&args)
                .arg("-t")
                .env_clear()
                .envs(&env),
            PATIENCE,
        );
        let said = String::from_utf8_lossy(&output.stderr);
        // nats-server -t prints its usage and exits 0 on an unknown flag.
        assert!(
            output.status.success() && said.contains("is valid"),
            "{what}: nats-server {args:?} -t:\n{said}"
        );

        if let Some(routes) = args.iter().find_map(|a| a.strip_prefix("--routes=")) {
            let statefulset = rendered.get("StatefulSet", "nats");
            let replicas = statefulset["spec"]["replicas"].as_u64().unwrap();
            let service = text(&statefulset["spec"]["serviceName"]);
            let cluster = nats.port(&"cluster".into());
            let expected: Vec<_> = (0..replicas)
                .map(|i| format!("nats://nats-{i}.{service}:{cluster}"))
                .collect();
            assert_eq!(routes.split(',').collect::<Vec<_>>(), expected, "{what}");
            rendered.get("Service", service);
        }
    }
}

/// A Beacon container's arguments and environment pointed at `nats`, plus
/// `overrides`.
fn beacon_command(
    rendered: &Rendered,
    target: &str,
    nats: &NatsServer,
    passwords: &Passwords,
    overrides: &[(&str, &str)],
) -> (Vec<String>, BTreeMap<String, String>) {
    let container = container(rendered, "beacon", target);
    // In the manifests: the `nats` Service's client port.
    let service = rendered.get("Service", "nats");
    let in_cluster = format!("nats://nats:{}", service["spec"]["ports"][0]["port"]);
    let local = |env: &mut BTreeMap<String, String>| {
        assert_eq!(env["NATS_URL"], in_cluster, "{target}");
        env.insert("NATS_URL".to_owned(), nats.url());
    };
    local_command(rendered, &container, passwords, local, overrides)
}

/// Runs the provision Job's container to completion.
async fn provision(rendered: &Rendered, nats: &NatsServer, passwords: &Passwords) {
    let (args, env) = beacon_command(rendered, "provision", nats, passwords, &[]);
    run_job(BEACON.as_ref(), &args, &env, PATIENCE).await;
}

/// A long-running Beacon container's process, on a free loopback port. JSON
/// logs, because that is where the test reads the port from.
fn spawn(
    rendered: &Rendered,
    target: &str,
    nats: &NatsServer,
    passwords: &Passwords,
    overrides: &[(&str, &str)],
) -> AppProcess {
    let mut all = vec![("BEACON_HTTP_ADDR", "127.0.0.1:0"), ("LOG_FORMAT", "json")];
    all.extend_from_slice(overrides);
    let command = beacon_command(rendered, target, nats, passwords, &all);
    spawn_local(BEACON.as_ref(), "BEACON", command)
}

/// Waits until GET `url` answers `status`.
async fn wait_status(url: &str, status: u16) {
    workloads::wait_status(&reqwest::Client::new(), url, status, PATIENCE).await;
}

#[tokio::test]
async fn least_privilege_users_carry_messages_end_to_end() {
    let rendered = overlay("dev");
    let dir = TempDir::new().unwrap();
    let passwords = generate_passwords(dir.path());
    let mut nats = start_nats(&rendered, &passwords);
    let nats_probe = &beacon_probe(&rendered, "nats", "startupProbe");
    wait_status(&format!("{}{nats_probe}", nats.monitor_url().unwrap()), 200).await;

    provision(&rendered, &nats, &passwords).await;
    // A window of 5: older pages are read back from the stream through
    // short-lived pull consumers. Fast broadcasts: seconds, not minutes.
    let receiver = spawn(
        &rendered,
        "receiver",
        &nats,
        &passwords,
        &[("BEACON_WINDOW", "5")],
    );
    let broadcaster = spawn(
        &rendered,
        "broadcaster",
        &nats,
        &passwords,
        &[
            ("BEACON_MIN_INTERVAL", "10ms"),
            ("BEACON_MAX_INTERVAL", "30ms"),
        ],
    );
    for (process, target) in [(&receiver, "receiver"), (&broadcaster, "broadcaster")] {
        let base = process.base_url();
        let live = beacon_probe(&rendered, target, "livenessProbe");
        wait_status(&format!("{base}{live}"), 200).await;
        let ready = beacon_probe(&rendered, target, "readinessProbe");
        wait_status(&format!("{base}{ready}"), 200).await;
    }

    // Pages entirely older than the window of 5 are read back from the
    // stream, each through a new pull consumer.
    let base = receiver.base_url();
    wait_for_seq(base, 12).await;
    assert_eq!(history(base, 0, 3).await, range(1, 3));

    // After a broker restart the receiver's consumers are recreated, and
    // the broadcaster's publishes retried, under the same permissions.
    let before = last_seq(base).await;
    nats.restart();
    wait_for_seq(base, before + 10).await;
    assert_eq!(
        history(base, before - 3, 6).await,
        range(before - 2, before + 3),
        "no gap across the restart"
    );

    assert_never_refused(&receiver, "the receiver");
    assert_never_refused(&broadcaster, "the broadcaster");
}

/// The sequences of up to `limit` messages after `after` from the receiver
/// at `base`.
async fn history(base: &str, after: u64, limit: usize) -> Vec<u64> {
    // A read the server refuses is never answered: fail, don't hang.
    tokio::time::timeout(
        PATIENCE,
        page(base, &format!("after={after}&limit={limit}")),
    )
    .await
    .expect("the history in time")
}

/// The path of a container's probe; `target` is a Beacon target or `nats`.
fn beacon_probe(rendered: &Rendered, target: &str, probe: &str) -> String {
    let container = containers(rendered)
        .into_iter()
        .find(|c| {
            if is_beacon(c) {
                c.target() == target
            } else {
                c.name() == target
            }
        })
        .unwrap_or_else(|| panic!("no {target} container"));
    text(&container.spec[probe]["httpGet"]["path"]).to_owned()
}

#[tokio::test]
async fn each_nats_user_may_do_its_targets_job_and_nothing_more() {
    let rendered = overlay("dev");
    let dir = TempDir::new().unwrap();
    let passwords = generate_passwords(dir.path());
    let nats = start_nats(&rendered, &passwords);
    provision(&rendered, &nats, &passwords).await;
    let settings = &rendered.config_maps["beacon-env"];
    let (stream, subject) = (&settings["BEACON_STREAM"], &settings["BEACON_SUBJECT"]);
    let manage = |action: &str| format!("$JS.API.STREAM.{action}.{stream}");

    // Nobody gets in without a user, or with a wrong password.
    assert!(async_nats::connect(nats.url()).await.is_err(), "anonymous");
    let wrong = ConnectOptions::with_user_and_password("receiver".into(), "wrong".into());
    assert!(wrong.connect(nats.url()).await.is_err(), "a wrong password");

    // The broadcaster publishes, and the stream stores it; it reads nothing
    // and manages nothing.
    let (client, errors) = login(&rendered, "beacon", "broadcaster", &nats, &passwords).await;
    let ack = jetstream::new(client.clone())
        .publish(subject.clone(), "hello".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!((ack.stream.as_str(), ack.sequence), (stream.as_str(), 1));
    subscribe_refused(&client, &errors, subject).await;
    subscribe_refused(&client, &errors, ">").await;
    publish_refused(&client, &errors, &manage("DELETE")).await;
    publish_refused(
        &client,
        &errors,
        &format!("$JS.API.CONSUMER.CREATE.{stream}"),
    )
    .await;

    // The receiver reads the stream through its own consumer; it cannot
    // publish to the subject nor change the stream.
    let (client, errors) = login(&rendered, "beacon", "receiver", &nats, &passwords).await;
    let js = jetstream::new(client.clone());
    let consumer = js
        .get_stream(stream)
        .await
        .unwrap()
        .create_consumer(push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let first = tokio::time::timeout(PATIENCE, messages.next())
        .await
        .expect("a message in time")
        .expect("the consumer stays open")
        .unwrap();
    assert_eq!(first.payload, "hello");
    publish_refused(&client, &errors, subject).await;
    for action in ["DELETE", "UPDATE", "PURGE", "CREATE"] {
        publish_refused(&client, &errors, &manage(action)).await;
    }
    let stored = js
        .get_stream(stream)
        .await
        .unwrap()
        .cached_info()
        .state
        .messages;
    assert_eq!(stored, 1, "the refused publish was not stored");

    // The provision user manages the stream only: no messages either way.
    let (client, errors) = login(&rendered, "beacon", "provision", &nats, &passwords).await;
    publish_refused(&client, &errors, subject).await;
    subscribe_refused(&client, &errors, subject).await;
    publish_refused(&client, &errors, &manage("DELETE")).await;

    // Nobody reads anybody else's replies: each may subscribe to its own
    // inbox only (what it does above), not to another's, nor to every
    // inbox.
    let prefix = |target: &str| {
        environment(
            &container(&rendered, "beacon", target),
            &rendered,
            &passwords,
        )["NATS_INBOX_PREFIX"]
            .clone()
    };
    let targets = ["broadcaster", "receiver", "provision"];
    for target in targets {
        let (client, errors) = login(&rendered, "beacon", target, &nats, &passwords).await;
        for other in targets.iter().filter(|other| **other != target) {
            subscribe_refused(&client, &errors, &format!("{}.>", prefix(other))).await;
        }
        subscribe_refused(&client, &errors, "_INBOX.>").await;
    }
}

#[test]
fn every_nats_user_has_an_inbox_prefix_of_its_own_and_may_read_only_it() {
    let rendered = overlay("dev");
    let dir = TempDir::new().unwrap();
    let passwords = generate_passwords(dir.path());
    let config = &rendered.config_maps["nats-config"]["nats.conf"];
    let mut prefixes = Vec::new();
    for target in ["broadcaster", "receiver", "provision"] {
        let env = environment(
            &container(&rendered, "beacon", target),
            &rendered,
            &passwords,
        );
        let prefix = env
            .get("NATS_INBOX_PREFIX")
            .unwrap_or_else(|| panic!("{target}: no NATS_INBOX_PREFIX"))
            .clone();
        assert!(
            config.contains(&format!("subscribe: {{ allow: [\"{prefix}.>\"] }}")),
            "nats.conf lets {target} subscribe to {prefix}.> and nothing else"
        );
        prefixes.push(prefix);
    }
    let distinct: std::collections::BTreeSet<_> = prefixes.iter().collect();
    assert_eq!(distinct.len(), prefixes.len(), "{prefixes:?}");
    assert!(
        !config.contains("\"_INBOX.>\""),
        "nobody may read every inbox"
    );
}

/// On a cluster the broadcaster and the receivers start before the
/// provision Job has created the stream. Their users may not create it, so
/// they only look it up and wait: not ready meanwhile, one log line saying
/// what they wait for, no request the server refuses, and no ERROR line
/// for the probes they fail meanwhile. Once the Job has run, they are
/// ready.
#[tokio::test]
async fn targets_that_may_not_manage_the_stream_wait_for_it_quietly() {
    let rendered = overlay("dev");
    let dir = TempDir::new().unwrap();
    let passwords = generate_passwords(dir.path());
    let nats = start_nats(&rendered, &passwords);
    let receiver = spawn(&rendered, "receiver", &nats, &passwords, &[]);
    let broadcaster = spawn(&rendered, "broadcaster", &nats, &passwords, &[]);
    let waiting = |process: &AppProcess| {
        process
            .output()
            .iter()
            .filter(|line| line.contains("waiting for stream HELLO to be created"))
            .count()
    };
    for (process, target) in [(&receiver, "receiver"), (&broadcaster, "broadcaster")] {
        eventually(
            &format!("the {target} to say what it waits for"),
            PATIENCE,
            || async { (waiting(process) > 0).then_some(()) },
        )
        .await;
        let ready = beacon_probe(&rendered, target, "readinessProbe");
        for _ in 0..3 {
            wait_status(&format!("{}{ready}", process.base_url()), 503).await;
        }
    }

    provision(&rendered, &nats, &passwords).await;
    for (process, target) in [(&receiver, "receiver"), (&broadcaster, "broadcaster")] {
        let ready = beacon_probe(&rendered, target, "readinessProbe");
        wait_status(&format!("{}{ready}", process.base_url()), 200).await;
        // The log is read on another thread: the line may lag the answer.
        eventually(
            &format!("the {target} to log it is ready"),
            PATIENCE,
            || async {
                process
                    .output()
                    .iter()
                    .any(|line| line.contains("\"message\":\"ready\""))
                    .then_some(())
            },
        )
        .await;
        assert_eq!(waiting(process), 1, "{target}: one line while waiting");
        assert_never_refused(process, target);
        let output = process.output();
        let errors: Vec<_> = output
            .iter()
            .filter(|line| line.contains("\"level\":\"ERROR\""))
            .collect();
        assert!(errors.is_empty(), "{target} logged errors: {errors:#?}");
        let transitions: Vec<_> = output
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|event| event["message"] == "ready" || event["message"] == "not ready")
            .map(|event| event["message"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            transitions.last().map(String::as_str),
            Some("ready"),
            "{target}: {transitions:?}"
        );
        assert!(
            transitions.len() <= 4,
            "{target} logs readiness changes, not probes: {transitions:?}"
        );
    }
    let log = nats.log();
    assert!(
        !log.contains("Violation"),
        "the server refused something:\n{log}"
    );
}
