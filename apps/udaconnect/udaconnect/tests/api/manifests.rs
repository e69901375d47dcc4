//! The Kubernetes manifests (`deploy/`) held to what UdaConnect runs,
//! without a cluster: every setting on a UdaConnect container is one its
//! target accepts; ports and probes are where the binary serves them; every
//! container is bounded, probed and locked down; each target logs in to
//! PostgreSQL as the role the migrate Job makes for it; and the NATS users
//! nats.conf gives UdaConnect let each target do its job and nothing more,
//! shown with the real binary, a real nats-server with the ConfigMap's
//! configuration, a real PostgreSQL that checks passwords, with those
//! roles, the manifests' own settings and passwords generated as `make up`
//! generates them. The API and the edge are closed, with the organiser's
//! token of the generated Secret, and the dev overlay's simulator sends its
//! attendees' positions through them with a phone's token each. Beacon's
//! side of the same manifests is held in Beacon's crate, with the same
//! helpers.

use std::{collections::BTreeMap, path::Path};

use async_nats::jetstream::{self, stream::DirectGetErrorKind};
use serde_json::{Value, json};
use tempfile::TempDir;
use testkit::{AppProcess, NatsServer, PostgresServer, eventually};
use udaconnect::Cli;

use super::{
    helpers::{PATIENCE, UDACONNECT},
    roles::{
        apply_roles, connect, postgres_like_the_image, role_password, roles_container,
        script_roles, server_setting, value,
    },
};
use testkit::{
    kustomize::{Rendered, deploy_dir, items, text},
    workloads::{
        self, Container, OVERLAYS, Passwords, assert_listens_where_ports_and_probes_point,
        assert_never_refused, container, containers, each_container_of, environment,
        generate_passwords, local_command, login, overlay, parse_settings, publish_refused,
        spawn_local, start_nats, subscribe_refused,
    },
};

/// Runs `udaconnect`.
fn is_udaconnect(container: &Container) -> bool {
    container.binary() == Some("udaconnect")
}

/// Parses `env` as `udaconnect <target>` would and checks it as `main` does.
fn check_settings(target: &str, env: &BTreeMap<String, String>) -> Result<(), String> {
    let cli: Cli = parse_settings(target, env)?;
    cli.plan().map(|_| ()).map_err(|err| err.to_string())
}

const TARGETS: [&str; 6] = [
    "migrate",
    "provision",
    "ingest",
    "writer",
    "meetings",
    "api",
];

#[test]
fn every_setting_on_a_udaconnect_container_is_one_its_target_accepts() {
    let mut targets: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    each_container_of("udaconnect", |name, _, container, env| {
        targets
            .entry(name)
            .or_default()
            .push(container.target().to_owned());
        if let Err(err) = check_settings(container.target(), &env) {
            panic!("{name}: {}: {err}\n{env:#?}", container.workload);
        }
    });
    for name in OVERLAYS {
        let found = targets.remove(name).unwrap_or_default();
        for target in TARGETS {
            assert!(
                found.iter().any(|t| t == target),
                "{name}: no {target} in {found:?}"
            );
        }
        assert_eq!(
            found.iter().any(|t| t == "simulate"),
            name == "dev",
            "{name}: the simulator runs in dev only: {found:?}"
        );
    }
}

#[test]
fn a_setting_the_binary_does_not_have_is_caught() {
    let mut env = BTreeMap::from([(
        "DATABASE_URL".to_owned(),
        "postgres://u:p@postgres:5432/udaconnect".to_owned(),
    )]);
    assert_eq!(check_settings("api", &env), Ok(()));
    env.insert("UDACONNECT_WRITER_FETCH".to_owned(), "64".to_owned());
    let err = check_settings("api", &env).unwrap_err();
    assert!(err.contains("UDACONNECT_WRITER_FETCH"), "{err}");
}

#[test]
fn udaconnect_listens_where_its_container_ports_and_probes_point() {
    each_container_of("udaconnect", |_, _, container, env| {
        if container.kind == "Job" || container.target() == "simulate" {
            // One-shot Jobs and the simulator (a client) serve nothing.
            assert!(
                container.spec.get("ports").is_none(),
                "{}",
                container.workload
            );
        } else if container.target() == "ingest" {
            assert_listens_where_ports_and_probes_point(
                container,
                &env,
                &[
                    ("UDACONNECT_HTTP_ADDR", "http"),
                    ("UDACONNECT_GRPC_ADDR", "grpc"),
                ],
            );
        } else {
            assert_listens_where_ports_and_probes_point(
                container,
                &env,
                &[("UDACONNECT_HTTP_ADDR", "http")],
            );
        }
    });
}

#[test]
fn every_udaconnect_pod_is_bounded_probed_and_locked_down() {
    for name in OVERLAYS {
        let rendered = overlay(name);
        // UdaConnect's containers, PostgreSQL and the migrate Job's psql.
        let pods = containers(&rendered)
            .into_iter()
            .filter(|c| is_udaconnect(c) || text(&c.spec["image"]).starts_with("postgis/postgis:"));
        for container in pods {
            let what = format!("{name}: {}", container.workload);
            let (spec, pod) = (container.spec, &container.pod["spec"]);
            for bound in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    assert!(
                        !spec["resources"][bound][resource].is_null(),
                        "{what}: no {bound}.{resource}"
                    );
                }
            }
            if spec.get("ports").is_some() {
                for probe in ["livenessProbe", "readinessProbe"] {
                    assert!(spec[probe].is_object(), "{what}: no {probe}");
                }
            }
            let security = &spec["securityContext"];
            assert_eq!(security["allowPrivilegeEscalation"], false, "{what}");
            assert_eq!(security["readOnlyRootFilesystem"], true, "{what}");
            assert_eq!(security["runAsNonRoot"], true, "{what}");
            assert_eq!(security["capabilities"]["drop"], json!(["ALL"]), "{what}");
            let pod_security = &pod["securityContext"];
            assert_eq!(pod_security["runAsNonRoot"], true, "{what}");
            assert_eq!(
                pod_security["seccompProfile"]["type"], "RuntimeDefault",
                "{what}"
            );
            assert!(
                pod_security["runAsUser"]
                    .as_u64()
                    .is_some_and(|uid| uid > 0),
                "{what}"
            );
            assert_eq!(pod["automountServiceAccountToken"], false, "{what}");
        }
        // PostgreSQL's readiness is pg_isready, on a volume of its own.
        let postgres = rendered.get("StatefulSet", "postgres");
        let server = &postgres["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(server["image"], "postgis/postgis:15-3.4", "{name}");
        assert_eq!(
            roles_container(&rendered).spec["image"],
            server["image"],
            "{name}: the roles container's psql is the server's"
        );
        assert_eq!(
            server["readinessProbe"]["exec"]["command"][0], "pg_isready",
            "{name}"
        );
        assert_eq!(
            postgres["spec"]["volumeClaimTemplates"][0]["metadata"]["name"], "data",
            "{name}"
        );
    }
}

/// The keys `deploy/scripts/secrets.sh` generates into `file`: the words
/// of its `ensure "$dir/<file>" ...` command.
fn generated_keys(file: &str) -> Vec<String> {
    let path = deploy_dir().join("scripts/secrets.sh");
    let script =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let call = format!("ensure \"$dir/{file}\"");
    let start = script
        .find(&call)
        .unwrap_or_else(|| panic!("{}: no `{call}`", path.display()));
    let mut keys = Vec::new();
    for line in script[start + call.len()..].lines() {
        let line = line.trim_end();
        keys.extend(
            line.trim_end_matches('\\')
                .split_whitespace()
                .map(str::to_owned),
        );
        if !line.ends_with('\\') {
            break;
        }
    }
    keys
}

/// The plain value of `container`'s env var `name`, as written.
fn raw_env<'a>(container: &Container<'a>, name: &str) -> Option<&'a str> {
    items(&container.spec["env"])
        .iter()
        .find(|var| var["name"] == name)?
        .get("value")?
        .as_str()
}

/// The Secret and key that `container`'s env var `name` is read from.
fn secret_ref<'a>(container: &Container<'a>, name: &str) -> Option<(&'a str, &'a str)> {
    let from = &items(&container.spec["env"])
        .iter()
        .find(|var| var["name"] == name)?["valueFrom"]["secretKeyRef"];
    Some((from["name"].as_str()?, from["key"].as_str()?))
}

/// The key of the `udaconnect-postgres` Secret that `container`'s env var
/// `name` is read from.
fn postgres_secret_key<'a>(container: &Container<'a>, name: &str) -> Option<&'a str> {
    secret_ref(container, name)
        .and_then(|(secret, key)| (secret == "udaconnect-postgres").then_some(key))
}

/// The meetings run as a StatefulSet whose pods are the shards: as many
/// shards as replicas in every overlay (one in dev, two in prod), each
/// pod's shard its index, all started at once.
#[test]
fn the_meetings_shards_are_the_statefulsets_pods() {
    for name in OVERLAYS {
        let rendered = overlay(name);
        let set = rendered.get("StatefulSet", "udaconnect-meetings");
        let replicas = set["spec"]["replicas"].as_u64().expect("replicas");
        assert_eq!(replicas, if name == "prod" { 2 } else { 1 }, "{name}");
        assert_eq!(set["spec"]["podManagementPolicy"], "Parallel", "{name}");
        let meetings = container(&rendered, "udaconnect", "meetings");
        assert_eq!(
            raw_env(&meetings, "UDACONNECT_MEETINGS_SHARDS"),
            Some(replicas.to_string().as_str()),
            "{name}: one shard a pod"
        );
        let shard = items(&meetings.spec["env"])
            .iter()
            .find(|var| var["name"] == "UDACONNECT_MEETINGS_SHARD")
            .map(|var| var["valueFrom"]["fieldRef"]["fieldPath"].clone());
        assert_eq!(
            shard,
            Some(json!("metadata.labels['apps.kubernetes.io/pod-index']")),
            "{name}"
        );
    }
}

/// The targets that take calls, closed in every overlay.
const CLOSED: [&str; 2] = ["api", "ingest"];

/// The API and the edge are closed (`UDACONNECT_OPEN_API=false`, written
/// out) and read the organiser's token from one Secret, whose key secrets.sh
/// generates; in dev the simulator reads the same. Every call to them then
/// needs a token, and the organiser's is the one `make up` generated.
#[test]
fn the_api_and_the_edge_are_closed_and_read_the_generated_organiser_token() {
    let dir = TempDir::new().unwrap();
    let passwords = generate_passwords(dir.path());
    for name in OVERLAYS {
        let rendered = overlay(name);
        let mut readers = vec![CLOSED[0], CLOSED[1]];
        if name == "dev" {
            readers.push("simulate");
        }
        let mut tokens = BTreeMap::new();
        for target in readers {
            let container = container(&rendered, "udaconnect", target);
            let what = format!("{name}: {}", container.workload);
            let (secret, key) = secret_ref(&container, "UDACONNECT_ORGANISER_TOKEN")
                .unwrap_or_else(|| {
                    panic!("{what}: UDACONNECT_ORGANISER_TOKEN is not read from a Secret")
                });
            assert_eq!(key, "UDACONNECT_ORGANISER_TOKEN", "{what}");
            let file = rendered
                .secrets
                .get(secret)
                .unwrap_or_else(|| panic!("{what}: no Secret {secret} is generated"));
            let file = file
                .file_name()
                .and_then(|f| f.to_str())
                .unwrap_or_default();
            assert!(
                generated_keys(file).iter().any(|k| k == key),
                "{what}: secrets.sh does not generate {key} into {file}"
            );
            if target != "simulate" {
                assert_eq!(
                    raw_env(&container, "UDACONNECT_OPEN_API"),
                    Some("false"),
                    "{what}: closed, said in the manifest"
                );
            }
            let env = environment(&container, &rendered, &passwords);
            tokens.insert(target, env["UDACONNECT_ORGANISER_TOKEN"].clone());
        }
        let token = &tokens["api"];
        assert!(token.len() >= 32, "{name}: {token}");
        assert!(
            tokens.values().all(|t| t == token),
            "{name}: one organiser token for all: {tokens:?}"
        );
        // Only those read it.
        for container in containers(&rendered).iter().filter(|c| is_udaconnect(c)) {
            let reads = secret_ref(container, "UDACONNECT_ORGANISER_TOKEN").is_some();
            assert_eq!(
                reads,
                tokens.contains_key(container.target()),
                "{name}: {} and the organiser's token",
                container.workload
            );
        }
    }
}

/// The organiser's token as the manifests give it to the API (and the
/// edge): the generated Secret's.
pub fn organiser_token(rendered: &Rendered, passwords: &Passwords) -> String {
    let token = |target| {
        environment(
            &container(rendered, "udaconnect", target),
            rendered,
            passwords,
        )["UDACONNECT_ORGANISER_TOKEN"]
            .clone()
    };
    let api = token("api");
    assert_eq!(api, token("ingest"), "the API's and the edge's");
    api
}

/// An HTTP client that presents `token` on every request.
pub fn client_with(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut bearer =
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value");
    bearer.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, bearer);
    reqwest::Client::builder()
        .timeout(PATIENCE)
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Every UdaConnect target that uses PostgreSQL logs in as a role of its
/// own, which the migrate Job's roles script makes, with the password of
/// the Secret key the script reads for that role, and secrets.sh generates
/// every such key; only the `roles` container logs in as the superuser.
/// (The end-to-end tests then log in with them, passwords checked.)
#[test]
fn each_udaconnect_target_logs_in_as_its_own_role_with_a_generated_password() {
    let generated = generated_keys("postgres.env");
    for name in OVERLAYS {
        let rendered = overlay(name);
        let roles = script_roles(&rendered);
        let init = roles_container(&rendered);
        let postgres = containers(&rendered)
            .into_iter()
            .find(|c| c.workload == "StatefulSet/postgres")
            .unwrap();
        assert_eq!(
            raw_env(&init, "PGUSER"),
            raw_env(&postgres, "POSTGRES_USER"),
            "{name}: the roles container logs in as the superuser"
        );
        assert_eq!(
            postgres_secret_key(&init, "PGPASSWORD"),
            postgres_secret_key(&postgres, "POSTGRES_PASSWORD"),
            "{name}: with its password"
        );
        for (role, variable) in &roles {
            let key = postgres_secret_key(&init, variable)
                .unwrap_or_else(|| panic!("{name}: roles.sql reads {role}'s password from {variable}, which the roles container does not get from the Secret"));
            assert!(
                generated.iter().any(|k| k == key),
                "{name}: {key} is not generated by secrets.sh: {generated:?}"
            );
        }
        let mut users = BTreeMap::new();
        for container in containers(&rendered).iter().filter(|c| is_udaconnect(c)) {
            let workload = &container.workload;
            let Some(url) = raw_env(container, "DATABASE_URL") else {
                continue;
            };
            let (user, variable) = url
                .strip_prefix("postgres://")
                .and_then(|rest| rest.split_once(":$("))
                .and_then(|(user, rest)| Some((user, rest.split_once(")@")?.0)))
                .unwrap_or_else(|| {
                    panic!("{workload}: DATABASE_URL {url} is not postgres://USER:$(PASSWORD)@...")
                });
            assert_eq!(
                user,
                format!("udaconnect_{}", container.target()),
                "{workload}: the role named after its target"
            );
            let script_variable = roles
                .get(user)
                .unwrap_or_else(|| panic!("{workload}: roles.sql makes no role {user}"));
            let key = postgres_secret_key(container, variable)
                .unwrap_or_else(|| panic!("{workload}: {variable} is not read from the Secret"));
            assert_eq!(
                Some(key),
                postgres_secret_key(&init, script_variable),
                "{workload}: {user}'s password is the one roles.sql gives it"
            );
            assert!(
                users.insert(user, workload.clone()).is_none(),
                "{name}: two targets log in as {user}: {users:?}"
            );
        }
        assert_eq!(
            users.keys().copied().collect::<Vec<_>>(),
            roles.keys().map(String::as_str).collect::<Vec<_>>(),
            "{name}: every role roles.sql makes is one target's"
        );
    }
}

/// The manifests' DATABASE_URL for `target`, pointed at `pg`; checks it
/// names the `postgres` Service, the database the server container creates
/// and the role postgres/roles.sql makes for the target, with the password
/// the script gives that role.
pub fn database_url(
    rendered: &Rendered,
    target: &str,
    passwords: &Passwords,
    pg: &PostgresServer,
) -> String {
    let env = environment(
        &container(rendered, "udaconnect", target),
        rendered,
        passwords,
    );
    let db = server_setting(rendered, "POSTGRES_DB");
    let role = format!("udaconnect_{target}");
    let password = role_password(rendered, passwords, &role);
    let port = &rendered.get("Service", "postgres")["spec"]["ports"][0]["port"];
    let service = format!("@postgres:{port}/");
    assert_eq!(
        env["DATABASE_URL"],
        format!("postgres://{role}:{password}{service}{db}"),
        "{target}"
    );
    env["DATABASE_URL"].replace(&service, &format!("@127.0.0.1:{}/", pg.port()))
}

/// A UdaConnect container's arguments and environment pointed at the
/// test's servers, plus `overrides`.
fn local_env(
    rendered: &Rendered,
    target: &str,
    nats: &NatsServer,
    pg: &PostgresServer,
    passwords: &Passwords,
    overrides: &[(&str, &str)],
) -> (Vec<String>, BTreeMap<String, String>) {
    let container = container(rendered, "udaconnect", target);
    let local = |env: &mut BTreeMap<String, String>| {
        if env.contains_key("NATS_URL") {
            assert_eq!(env["NATS_URL"], "nats://nats:4222", "{target}");
            env.insert("NATS_URL".to_owned(), nats.url());
        }
        if env.contains_key("DATABASE_URL") {
            let url = database_url(rendered, target, passwords, pg);
            env.insert("DATABASE_URL".to_owned(), url);
        }
    };
    local_command(rendered, &container, passwords, local, overrides)
}

/// nats-server as the manifests configure it, and PostgreSQL as the
/// postgis image makes it, with the roles the migrate Job's `roles`
/// container makes.
async fn servers(rendered: &Rendered, passwords: &Passwords) -> (NatsServer, PostgresServer) {
    let nats = start_nats(rendered, passwords);
    let pg = postgres_like_the_image(rendered, passwords).await;
    apply_roles(rendered, passwords, &pg).await;
    (nats, pg)
}

/// Runs a Job's container to completion.
pub async fn run_job(
    rendered: &Rendered,
    target: &str,
    nats: &NatsServer,
    pg: &PostgresServer,
    passwords: &Passwords,
) {
    let (args, env) = local_env(rendered, target, nats, pg, passwords, &[]);
    workloads::run_job(Path::new(UDACONNECT), &args, &env, PATIENCE).await;
}

/// A long-running UdaConnect container's process, on free loopback ports.
pub fn spawn(
    rendered: &Rendered,
    target: &str,
    nats: &NatsServer,
    pg: &PostgresServer,
    passwords: &Passwords,
) -> AppProcess {
    let mut overrides = vec![
        ("UDACONNECT_HTTP_ADDR", "127.0.0.1:0"),
        ("LOG_FORMAT", "json"),
    ];
    if target == "ingest" {
        overrides.push(("UDACONNECT_GRPC_ADDR", "127.0.0.1:0"));
    }
    let command = local_env(rendered, target, nats, pg, passwords, &overrides);
    spawn_local(Path::new(UDACONNECT), "UDACONNECT", command)
}

/// Sends `body` to `url` until it is answered `status`; the answer.
async fn post_until(http: &reqwest::Client, url: &str, body: &Value, status: u16) -> Value {
    eventually(&format!("POST {url} = {status}"), PATIENCE, || async {
        let response = http.post(url).json(body).send().await.ok()?;
        if response.status().as_u16() != status {
            return None;
        }
        response.json::<Value>().await.ok()
    })
    .await
}

/// Waits until GET `url` answers `status`.
async fn wait_status(http: &reqwest::Client, url: &str, status: u16) {
    workloads::wait_status(http, url, status, PATIENCE).await;
}

/// The dev overlay's UdaConnect, run as the manifests run it: the migrate
/// and provision Jobs, then the API, the edge, the writer and the meetings
/// target, each with its own NATS user and the database URL built from the
/// generated password. Two persons' locations sent to the edge are stored
/// by the writer and read back from the API, the meeting they make is
/// folded in by the meetings target and read back from the API too, and no
/// request was refused on the way. Then each user is shown what it may not
/// do.
#[tokio::test]
async fn least_privilege_users_carry_locations_from_the_edge_to_the_api() {
    let rendered = overlay("dev");
    let dir = TempDir::new().unwrap();
    let passwords = generate_passwords(dir.path());
    let (nats, pg) = servers(&rendered, &passwords).await;

    run_job(&rendered, "migrate", &nats, &pg, &passwords).await;
    run_job(&rendered, "provision", &nats, &pg, &passwords).await;
    let api = spawn(&rendered, "api", &nats, &pg, &passwords);
    let ingest = spawn(&rendered, "ingest", &nats, &pg, &passwords);
    let writer = spawn(&rendered, "writer", &nats, &pg, &passwords);
    let meetings = spawn(&rendered, "meetings", &nats, &pg, &passwords);
    // The API and the edge are closed: the organiser's token, as the
    // generated Secret holds it.
    let http = client_with(&organiser_token(&rendered, &passwords));
    for process in [&api, &ingest, &writer, &meetings] {
        wait_status(&http, &format!("{}/readyz", process.base_url()), 200).await;
    }
    let anonymous = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    for closed in [
        format!("{}/api/v2/persons", api.base_url()),
        format!("{}/api/persons", api.base_url()),
    ] {
        let status = anonymous.get(&closed).send().await.unwrap().status();
        assert_eq!(status.as_u16(), 401, "{closed} without a token");
    }
    let status = anonymous
        .post(format!("{}/api/v2/locations", ingest.base_url()))
        .json(&json!({"person_id": 1, "lat": 45.0, "lon": 7.0}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 401, "a location without a token");

    let mut persons = Vec::new();
    for (first_name, last_name) in [("Ada", "Lovelace"), ("Charles", "Babbage")] {
        let person = post_until(
            &http,
            &format!("{}/api/v2/persons", api.base_url()),
            &json!({"first_name": first_name, "last_name": last_name, "company_name": "Engines"}),
            201,
        )
        .await;
        persons.push(person["id"].clone());
    }
    // Both at the same place at the same time. The edge learns new persons
    // within UDACONNECT_INGEST_PERSON_REFRESH.
    for person in &persons {
        let location = post_until(
            &http,
            &format!("{}/api/v2/locations", ingest.base_url()),
            &json!({"person_id": person, "lat": 45.0, "lon": 7.0, "time": "2021-03-01T10:00:00Z"}),
            201,
        )
        .await;
        let stored = format!("{}/api/v2/locations/{}", api.base_url(), location["id"]);
        wait_status(&http, &stored, 200).await;
    }
    // The writer announces what it stored, and the meetings target folds
    // it into PostgreSQL, where the API reads the meeting.
    let met = format!("{}/api/v2/persons/{}/meetings", api.base_url(), persons[0]);
    let page = eventually("the meeting folded in", PATIENCE, || async {
        let page: Value = http.get(&met).send().await.ok()?.json().await.ok()?;
        (page["meetings"].as_array()?.len() == 1).then_some(page)
    })
    .await;
    assert_eq!(page["meetings"][0]["with"]["id"], persons[1], "{page}");

    for (process, target) in [
        (&ingest, "ingest"),
        (&writer, "writer"),
        (&meetings, "meetings"),
    ] {
        assert_never_refused(process, target);
    }
    let log = nats.log();
    assert!(
        !log.contains("Violation"),
        "the server refused something:\n{log}"
    );

    let streams = &rendered.config_maps["udaconnect-streams"];
    let (locations, subject) = (
        &streams["UDACONNECT_LOCATIONS_STREAM"],
        &streams["UDACONNECT_LOCATIONS_SUBJECT"],
    );
    let (dead, dead_subject) = (
        &streams["UDACONNECT_DEAD_STREAM"],
        &streams["UDACONNECT_DEAD_SUBJECT"],
    );
    let (stored, stored_subject) = (
        &streams["UDACONNECT_STORED_STREAM"],
        &streams["UDACONNECT_STORED_SUBJECT"],
    );
    let manage = |action: &str, stream: &str| format!("$JS.API.STREAM.{action}.{stream}");

    // The edge publishes locations, and the stream stores them; it cannot
    // consume them, set locations aside as dead, nor manage a stream.
    let (client, errors) = login(&rendered, "udaconnect", "ingest", &nats, &passwords).await;
    let ack = jetstream::new(client.clone())
        .publish(subject.clone(), "not a location".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.stream, *locations);
    subscribe_refused(&client, &errors, subject).await;
    publish_refused(&client, &errors, dead_subject).await;
    publish_refused(
        &client,
        &errors,
        &format!("$JS.API.CONSUMER.CREATE.{locations}"),
    )
    .await;
    publish_refused(
        &client,
        &errors,
        &format!("$JS.API.CONSUMER.MSG.NEXT.{locations}.writer"),
    )
    .await;
    for action in ["CREATE", "UPDATE", "DELETE", "PURGE"] {
        publish_refused(&client, &errors, &manage(action, locations)).await;
    }

    // The writer consumes (what it does above) and sets aside dead letters;
    // it cannot publish locations nor manage a stream, nor use another
    // consumer.
    let (client, errors) = login(&rendered, "udaconnect", "writer", &nats, &passwords).await;
    // It reads the oldest pending location's time for its lag metric (the
    // stream may be empty by now: that answer is an answer too).
    let stream = jetstream::new(client.clone())
        .get_stream(locations)
        .await
        .unwrap();
    match stream.direct_get_next_for_subject(subject, None).await {
        Ok(_) => {}
        Err(err) if err.kind() == DirectGetErrorKind::NotFound => {}
        Err(err) => panic!("the writer cannot read the oldest pending location: {err}"),
    }
    publish_refused(&client, &errors, subject).await;
    subscribe_refused(&client, &errors, subject).await;
    publish_refused(
        &client,
        &errors,
        &format!("$JS.API.CONSUMER.CREATE.{locations}.other"),
    )
    .await;
    for stream in [locations, dead] {
        for action in ["CREATE", "UPDATE", "DELETE", "PURGE"] {
            publish_refused(&client, &errors, &manage(action, stream)).await;
        }
    }

    // The meetings target consumes the stored locations (what it does
    // above, through the family of consumers its shards use); it cannot
    // announce stored locations nor publish locations or dead letters,
    // cannot read a stream but through a consumer, nor use a consumer of
    // another stream, nor delete one, nor manage a stream.
    let (client, errors) = login(&rendered, "udaconnect", "meetings", &nats, &passwords).await;
    // It reads the oldest pending stored location's time for its lag
    // metric.
    let stream = jetstream::new(client.clone())
        .get_stream(stored)
        .await
        .unwrap();
    match stream
        .direct_get_next_for_subject(stored_subject, None)
        .await
    {
        Ok(_) => {}
        Err(err) if err.kind() == DirectGetErrorKind::NotFound => {}
        Err(err) => panic!("the meetings target cannot read the oldest pending location: {err}"),
    }
    for subject in [stored_subject, subject, dead_subject] {
        publish_refused(&client, &errors, subject).await;
    }
    subscribe_refused(&client, &errors, stored_subject).await;
    // A shard of a two-way cut makes its consumer.
    stream
        .get_or_create_consumer(
            "meetings-1-of-2",
            jetstream::consumer::pull::Config {
                durable_name: Some("meetings-1-of-2".to_owned()),
                filter_subject: stored_subject.to_owned(),
                ..Default::default()
            },
        )
        .await
        .expect("a shard's consumer");
    for refused in [
        format!("$JS.API.CONSUMER.DELETE.{stored}.meetings"),
        format!("$JS.API.CONSUMER.CREATE.{locations}.other"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{locations}.writer"),
    ] {
        publish_refused(&client, &errors, &refused).await;
    }
    publish_refused(
        &client,
        &errors,
        &format!("$JS.API.STREAM.INFO.{locations}"),
    )
    .await;
    for stream in [locations, dead, stored, "MEETINGS"] {
        for action in ["CREATE", "UPDATE", "DELETE", "PURGE"] {
            publish_refused(&client, &errors, &manage(action, stream)).await;
        }
    }
    // It publishes the meetings' events, and reads none back.
    subscribe_refused(&client, &errors, "udaconnect.meetings").await;

    // The provision user manages the streams only: no messages either way.
    let (client, errors) = login(&rendered, "udaconnect", "provision", &nats, &passwords).await;
    publish_refused(&client, &errors, subject).await;
    subscribe_refused(&client, &errors, subject).await;
    publish_refused(&client, &errors, &manage("DELETE", locations)).await;

    // Nobody reads anybody else's replies, Beacon's users' included.
    let prefix = |binary: &str, target: &str| {
        environment(&container(&rendered, binary, target), &rendered, &passwords)
            ["NATS_INBOX_PREFIX"]
            .clone()
    };
    let users = [
        ("udaconnect", "provision"),
        ("udaconnect", "ingest"),
        ("udaconnect", "writer"),
        ("udaconnect", "meetings"),
        ("beacon", "receiver"),
    ];
    for (binary, target) in users.into_iter().take(4) {
        let (client, errors) = login(&rendered, binary, target, &nats, &passwords).await;
        for (other_binary, other) in users.iter().filter(|user| user.1 != target) {
            let inbox = format!("{}.>", prefix(other_binary, other));
            subscribe_refused(&client, &errors, &inbox).await;
        }
        subscribe_refused(&client, &errors, "_INBOX.>").await;
    }
}

/// On a cluster the edge, the writer and the meetings target may start
/// before the provision Job has created the streams. Their users may not
/// create them, so they only look them up and wait: not ready meanwhile, a
/// log line saying what they wait for, and no request the server refuses.
/// Once the Job has run, they are ready.
#[tokio::test]
async fn targets_that_may_not_manage_the_streams_wait_for_them_quietly() {
    let rendered = overlay("dev");
    let dir = TempDir::new().unwrap();
    let passwords = generate_passwords(dir.path());
    let (nats, pg) = servers(&rendered, &passwords).await;
    run_job(&rendered, "migrate", &nats, &pg, &passwords).await;

    let ingest = spawn(&rendered, "ingest", &nats, &pg, &passwords);
    let writer = spawn(&rendered, "writer", &nats, &pg, &passwords);
    let meetings = spawn(&rendered, "meetings", &nats, &pg, &passwords);
    let http = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let waiting = [
        (&ingest, "ingest", "LOCATIONS"),
        (&writer, "writer", "LOCATIONS"),
        (&meetings, "meetings", "LOCATIONS_STORED"),
    ];
    for (process, target, stream) in waiting {
        let line = format!("waiting for stream {stream} to be created");
        eventually(
            &format!("the {target} to say what it waits for"),
            PATIENCE,
            || async {
                process
                    .output()
                    .iter()
                    .any(|output| output.contains(&line))
                    .then_some(())
            },
        )
        .await;
        wait_status(&http, &format!("{}/readyz", process.base_url()), 503).await;
    }

    run_job(&rendered, "provision", &nats, &pg, &passwords).await;
    for (process, target, _) in waiting {
        wait_status(&http, &format!("{}/readyz", process.base_url()), 200).await;
        assert_never_refused(process, target);
    }
    let log = nats.log();
    assert!(
        !log.contains("Violation"),
        "the server refused something:\n{log}"
    );
}

/// `http://<address>` of the gRPC server of an edge `process`, from the
/// line it logs when it listens.
async fn grpc_url(process: &AppProcess) -> String {
    eventually("the edge's gRPC address", PATIENCE, || async {
        process.output().iter().find_map(|line| {
            let event: Value = serde_json::from_str(line).ok()?;
            (event["message"] == "ingest: gRPC listening")
                .then(|| Some(format!("http://{}", event["grpc"].as_str()?)))?
        })
    })
    .await
}

/// The dev overlay's simulator, run as the manifests run it (its command,
/// its environment with the generated organiser token; only the API's and
/// the edge's addresses are the test's, a duration ends it, and it logs at
/// debug) against the closed API and edge: it creates its twenty attendees
/// with the organiser's token, gives each one phone, and sends each
/// attendee's positions with that phone's token (the simulator's own test
/// shows a revoked phone's positions refused). Its locations are stored,
/// nothing is refused, and no token shows in any log.
#[tokio::test]
async fn the_dev_simulator_sends_through_the_closed_edge_with_a_phone_per_attendee() {
    let rendered = overlay("dev");
    let dir = TempDir::new().unwrap();
    let passwords = generate_passwords(dir.path());
    let (nats, pg) = servers(&rendered, &passwords).await;
    run_job(&rendered, "migrate", &nats, &pg, &passwords).await;
    run_job(&rendered, "provision", &nats, &pg, &passwords).await;
    let api = spawn(&rendered, "api", &nats, &pg, &passwords);
    let ingest = spawn(&rendered, "ingest", &nats, &pg, &passwords);
    let writer = spawn(&rendered, "writer", &nats, &pg, &passwords);
    let organiser = organiser_token(&rendered, &passwords);
    let http = client_with(&organiser);
    for process in [&api, &ingest, &writer] {
        wait_status(&http, &format!("{}/readyz", process.base_url()), 200).await;
    }

    let simulate = container(&rendered, "udaconnect", "simulate");
    let attendees: i64 =
        environment(&simulate, &rendered, &passwords)["UDACONNECT_SIMULATE_ATTENDEES"]
            .parse()
            .expect("a number of attendees");
    let grpc = grpc_url(&ingest).await;
    let (args, env) = local_env(
        &rendered,
        "simulate",
        &nats,
        &pg,
        &passwords,
        &[
            ("UDACONNECT_SIMULATE_API_URL", api.base_url()),
            ("UDACONNECT_SIMULATE_GRPC_URL", &grpc),
            // Long enough, at its two locations a second, for every
            // attendee to report.
            ("UDACONNECT_SIMULATE_DURATION", "12s"),
            ("RUST_LOG", "debug"),
            ("LOG_FORMAT", "json"),
        ],
    );
    let run = tokio::process::Command::new(UDACONNECT)
        .args(&args)
        .env_clear()
        .envs(&env)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(PATIENCE * 2, run)
        .await
        .expect("the simulator finishes in time")
        .expect("the simulator runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let summary: Value = stdout
        .lines()
        .find_map(|line| line.strip_prefix("SUMMARY "))
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_else(|| panic!("a SUMMARY line in {stdout}"));
    let accepted = summary["accepted"].as_i64().expect("accepted");
    assert!(accepted >= attendees, "{summary}");
    for refused in ["rejected", "refused", "failed", "denied"] {
        assert_eq!(summary[refused], 0, "{refused}: {summary}");
    }
    assert!(
        summary["fresh_samples"].as_u64().is_some_and(|n| n >= 1),
        "freshness read with the organiser's token: {summary}"
    );

    // One phone per attendee, and nothing else; every location stored is
    // an attendee's, each attendee's among them.
    let owner = connect(&database_url(&rendered, "migrate", &passwords, &pg))
        .await
        .expect("the owner logs in");
    let persons: i64 = value(
        &owner,
        "SELECT count(*) FROM person WHERE last_name = 'Simulated'",
    )
    .await;
    assert_eq!(persons, attendees);
    let phones: String = value(
        &owner,
        "SELECT count(*) || ' ' || count(DISTINCT c.person_id) || ' ' \
         || count(*) FILTER (WHERE c.kind = 'device' AND c.revoked_at IS NULL \
                             AND p.last_name = 'Simulated') \
         FROM credential c JOIN person p ON p.id = c.person_id",
    )
    .await;
    assert_eq!(phones, format!("{attendees} {attendees} {attendees}"));
    let stored = eventually("the simulator's locations stored", PATIENCE, || async {
        let stored: String = value(
            &owner,
            "SELECT count(*) || ' ' || count(DISTINCT l.person_id) || ' ' \
             || count(*) FILTER (WHERE p.last_name = 'Simulated') \
             FROM location l JOIN person p ON p.id = l.person_id",
        )
        .await;
        (stored.split(' ').next() == Some(&accepted.to_string())).then_some(stored)
    })
    .await;
    assert_eq!(stored, format!("{accepted} {attendees} {accepted}"));

    // No token in any log, the phones' (`ucd_…`) nor the organiser's.
    let logs = [
        ("simulate", format!("{stdout}\n{stderr}")),
        ("api", api.output().join("\n")),
        ("ingest", ingest.output().join("\n")),
    ];
    for (what, log) in logs {
        assert!(
            !log.contains("ucd_"),
            "{what} logged a phone's token:\n{log}"
        );
        assert!(
            !log.contains(&organiser),
            "{what} logged the organiser's token"
        );
    }
    assert!(
        stderr.contains("DEBUG") || stdout.contains("DEBUG"),
        "the simulator logged at debug"
    );
    assert_never_refused(&ingest, "ingest");
    assert_never_refused(&writer, "writer");
}
