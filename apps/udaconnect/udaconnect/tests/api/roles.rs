//! The PostgreSQL roles the manifests give UdaConnect's targets, held against
//! a real server that checks passwords: the migrate Job's `roles` container
//! run as the kubelet runs it (its command, its environment with the
//! generated passwords, the ConfigMap's script where its volume is mounted),
//! then the real `udaconnect migrate` as the owner role, then each target's
//! role doing what its target does (the API as the real `udaconnect api`
//! over HTTP, the edge's, the writer's and the meetings' statements through
//! the store they use) and refused what it must not. The manifests'
//! end-to-end test runs the edge, the writer and the meetings target
//! themselves on these roles.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tempfile::TempDir;
use testkit::{
    PostgresServer,
    kustomize::{Rendered, items, text},
    postgres_bindir,
    workloads::{
        Container, Passwords, containers, environment, expand, generate_passwords, overlay,
        start_nats,
    },
};
use tokio_postgres::{Client, NoTls, error::SqlState};
use udaconnect_domain::{
    ClaimOutcome, KeyClaim, LocationRecord, Position, Store, Timestamp,
    meeting::{MeetingQuery, MeetingRules, Sighting},
};
use udaconnect_store::{MIGRATIONS, PgConfig, PgStore};

use super::{
    helpers::PATIENCE,
    manifests::{client_with, database_url, organiser_token, run_job, spawn},
};

/// The migrate Job's container that makes the roles, as the superuser.
pub fn roles_container(rendered: &Rendered) -> Container<'_> {
    containers(rendered)
        .into_iter()
        .find(|c| c.workload == "Job/udaconnect-migrate" && c.name() == "roles")
        .expect("the migrate Job has a `roles` container")
}

/// The files the ConfigMap volumes of `container` put where they are
/// mounted: mount path → file name → content.
fn mounted_files(
    rendered: &Rendered,
    container: &Container,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let volumes = items(&container.pod["spec"]["volumes"]);
    items(&container.spec["volumeMounts"])
        .iter()
        .map(|mount| {
            let volume = volumes
                .iter()
                .find(|volume| volume["name"] == mount["name"])
                .unwrap_or_else(|| panic!("{}: no volume {}", container.workload, mount["name"]));
            let name = text(&volume["configMap"]["name"]);
            let data = rendered
                .config_maps
                .get(name)
                .unwrap_or_else(|| panic!("{}: no ConfigMap {name}", container.workload));
            (text(&mount["mountPath"]).to_owned(), data.clone())
        })
        .collect()
}

/// The script the `roles` container runs: the one file mounted into it.
pub fn roles_script(rendered: &Rendered) -> String {
    let files = mounted_files(rendered, &roles_container(rendered));
    let scripts: Vec<&String> = files.values().flat_map(BTreeMap::values).collect();
    assert_eq!(scripts.len(), 1, "one script in the roles container");
    scripts[0].clone()
}

/// The login roles the script makes, each with the environment variable
/// its password is read from: its `\getenv VARIABLE ENV` lines and its
/// `('role', :'VARIABLE')` rows.
pub fn script_roles(rendered: &Rendered) -> BTreeMap<String, String> {
    let script = roles_script(rendered);
    let env: BTreeMap<&str, &str> = script
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("\\getenv ")?.split_whitespace();
            Some((words.next()?, words.next()?))
        })
        .collect();
    let roles: BTreeMap<String, String> = script
        .lines()
        .filter_map(|line| {
            let (role, variable) = line.trim().strip_prefix("('")?.split_once("', :'")?;
            let variable = variable.split_once('\'')?.0;
            let env = env
                .get(variable)
                .unwrap_or_else(|| panic!("roles.sql: :'{variable}' is not read by \\getenv"));
            Some((role.to_owned(), (*env).to_owned()))
        })
        .collect();
    assert!(
        !roles.is_empty(),
        "roles.sql makes no login role:\n{script}"
    );
    roles
}

/// The password the script gives `role`: what its variable holds in the
/// `roles` container.
pub fn role_password(rendered: &Rendered, passwords: &Passwords, role: &str) -> String {
    let variable = script_roles(rendered)
        .remove(role)
        .unwrap_or_else(|| panic!("roles.sql makes no role {role}"));
    environment(&roles_container(rendered), rendered, passwords)
        .remove(&variable)
        .unwrap_or_else(|| panic!("the roles container has no {variable}"))
}

/// A plain env value of the PostgreSQL server's container.
pub fn server_setting(rendered: &Rendered, name: &str) -> String {
    let postgres = rendered.get("StatefulSet", "postgres");
    let server = &postgres["spec"]["template"]["spec"]["containers"][0];
    items(&server["env"])
        .iter()
        .find(|var| var["name"] == name)
        .map(|var| text(&var["value"]).to_owned())
        .unwrap_or_else(|| panic!("postgres: no {name}"))
}

/// PostgreSQL as the postgis image makes it from its container's env: the
/// superuser POSTGRES_USER with the generated POSTGRES_PASSWORD, owning the
/// database POSTGRES_DB with PostGIS in it; passwords are checked.
pub async fn postgres_like_the_image(rendered: &Rendered, passwords: &Passwords) -> PostgresServer {
    let (user, db) = (
        server_setting(rendered, "POSTGRES_USER"),
        server_setting(rendered, "POSTGRES_DB"),
    );
    let password = passwords["postgres.env"]["POSTGRES_PASSWORD"].clone();
    tokio::task::spawn_blocking(move || {
        let mut pg = PostgresServer::start();
        pg.require_passwords();
        pg.psql(
            "postgres",
            &format!("CREATE ROLE \"{user}\" LOGIN SUPERUSER PASSWORD '{password}'"),
        );
        pg.psql(
            "postgres",
            &format!("CREATE DATABASE \"{db}\" OWNER \"{user}\""),
        );
        pg.psql(&db, "CREATE EXTENSION postgis");
        pg
    })
    .await
    .expect("PostgreSQL starts")
}

/// Runs the `roles` container against `pg` as the kubelet would: its
/// command and arguments (`$(NAME)` expanded), its environment, the
/// ConfigMaps' files under its mount paths. Only the server's address
/// (PGHOST, PGPORT, the `postgres` Service's) is the test's, and the
/// PostgreSQL client programs are the test server's own.
pub async fn apply_roles(rendered: &Rendered, passwords: &Passwords, pg: &PostgresServer) {
    let container = roles_container(rendered);
    let mut env = environment(&container, rendered, passwords);
    let port = &rendered.get("Service", "postgres")["spec"]["ports"][0]["port"];
    assert_eq!(env["PGHOST"], "postgres", "the roles container's PGHOST");
    assert_eq!(
        env["PGPORT"],
        port.to_string(),
        "the roles container's PGPORT"
    );
    env.insert("PGHOST".to_owned(), "127.0.0.1".to_owned());
    env.insert("PGPORT".to_owned(), pg.port().to_string());
    env.insert(
        "PATH".to_owned(),
        format!("{}:/usr/bin:/bin", postgres_bindir().display()),
    );

    let root = TempDir::new().expect("a directory for the volumes");
    let mut argv: Vec<String> = items(&container.spec["command"])
        .iter()
        .chain(items(&container.spec["args"]))
        .map(|arg| expand(text(arg), &env))
        .collect();
    for (mount, files) in mounted_files(rendered, &container) {
        let dir = root.path().join(mount.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).expect("a mount point");
        for (name, content) in files {
            std::fs::write(dir.join(name), content).expect("a mounted file");
        }
        let local = dir.to_str().expect("a UTF-8 path");
        for arg in &mut argv {
            *arg = arg.replace(&mount, local);
        }
    }
    let (program, args) = argv.split_first().expect("a command");
    let run = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(&env)
        .current_dir(root.path())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the roles container finishes in time")
        .expect("the roles container runs");
    assert!(
        output.status.success(),
        "the roles container failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A session logged in with `url`.
pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio::time::timeout(PATIENCE, tokio_postgres::connect(url, NoTls))
        .await
        .expect("PostgreSQL answers in time")?;
    tokio::spawn(connection);
    Ok(client)
}

/// Runs `sql` as `role`, which PostgreSQL must refuse for want of a
/// privilege (not owning the table counts as one).
async fn refused(client: &Client, role: &str, sql: &str) {
    let outcome = tokio::time::timeout(PATIENCE, client.batch_execute(sql))
        .await
        .expect("PostgreSQL answers in time");
    match outcome {
        Err(err) if err.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {}
        other => panic!("{role} may `{sql}`: {other:?}"),
    }
}

/// The one value `sql` returns.
pub async fn value<T: for<'a> tokio_postgres::types::FromSql<'a>>(client: &Client, sql: &str) -> T {
    tokio::time::timeout(PATIENCE, client.query_one(sql, &[]))
        .await
        .expect("PostgreSQL answers in time")
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
        .get(0)
}

/// The owner of each of UdaConnect's tables.
async fn owners(client: &Client) -> BTreeMap<String, String> {
    tokio::time::timeout(
        PATIENCE,
        client.query(
            "SELECT c.relname::text, pg_get_userbyid(c.relowner)::text FROM pg_class c \
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') \
               AND NOT c.relispartition AND c.relname <> 'spatial_ref_sys'",
            &[],
        ),
    )
    .await
    .expect("PostgreSQL answers in time")
    .expect("the tables")
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

/// The store a target opens with its manifests' DATABASE_URL.
fn store(url: &str) -> PgStore {
    PgStore::new(&PgConfig::new(url)).expect("a store")
}

fn at(time: &str) -> Timestamp {
    Timestamp::from_datetime(time.parse().expect("an RFC 3339 time"))
}

/// What no target's role may do: change the schema, or empty a table.
const NOBODY_BUT_THE_OWNER: &[&str] = &[
    "DROP TABLE location",
    "DROP TABLE person",
    "TRUNCATE location",
    "TRUNCATE person",
    "ALTER TABLE location ADD COLUMN note text",
    "ALTER TABLE person DROP COLUMN company_name",
    "CREATE INDEX ON location (person_id)",
    "CREATE TABLE note (body text)",
    "CREATE TEMPORARY TABLE note (body text)",
    "ALTER SEQUENCE location_id_seq RESTART",
    "SELECT setval('location_id_seq', 1)",
    "DELETE FROM udaconnect_migrations",
    "DROP TABLE meeting",
    "TRUNCATE meeting",
    "TRUNCATE meeting_position",
    "ALTER SEQUENCE meeting_id_seq RESTART",
    "SELECT setval('meeting_id_seq', 1)",
    "DROP TABLE credential",
    "TRUNCATE credential",
    "ALTER SEQUENCE credential_id_seq RESTART",
    "TRUNCATE erased_person",
    "DELETE FROM erased_person",
    "INSERT INTO erased_person (person_id) VALUES (99)",
];

/// What each target's role may not do beyond that: nobody but the meetings
/// target updates or deletes, and it only meetings; the API writes no
/// location, and erases a person only through the function that removes
/// them whole; the edge writes nothing but its claims of keys and reads no
/// location, the writer creates no person and reads of a location only its
/// id, time and key, and of the erasures only who; only the edge reads
/// claims, and only the writer forgets them, those of persons erased; only
/// the meetings target writes the meetings' tables, changes no folded-in
/// location, reads of a location only where and when it was and whose,
/// and reads no other table; only the API makes and revokes
/// credentials (changing nothing else of them, deleting none), and only it
/// and the edge read them.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "api",
        &[
            "INSERT INTO location (person_id, coordinate) VALUES (1, ST_MakePoint(7, 45))",
            "UPDATE location SET person_id = person_id",
            "DELETE FROM location",
            "UPDATE person SET first_name = 'x'",
            "DELETE FROM person",
            "INSERT INTO person (id, first_name, last_name, company_name) VALUES (99, 'a', 'b', 'c')",
            "SELECT count(*) FROM ingest_key_claim",
            "SELECT location_maintain(localtimestamp, 1, NULL)",
            "SELECT ingest_key_claim_prune(localtimestamp, interval '1 year', 1)",
            "SELECT meeting_position_maintain(localtimestamp, 1, NULL)",
            "SELECT meeting_prune(localtimestamp, interval '1 year', 1)",
            "UPDATE credential SET digest = digest",
            "UPDATE credential SET person_id = person_id",
            "DELETE FROM credential",
            "SELECT person_hold(ARRAY[1])",
            "SELECT ingest_key_claim_forget(ARRAY[1])",
        ],
    ),
    (
        "ingest",
        &[
            "INSERT INTO location (id, person_id, coordinate) VALUES (99, 1, ST_MakePoint(7, 45))",
            "UPDATE location SET person_id = person_id",
            "DELETE FROM location",
            "SELECT count(*) FROM location",
            "INSERT INTO person (first_name, last_name, company_name) VALUES ('a', 'b', 'c')",
            "UPDATE person SET first_name = 'x'",
            "DELETE FROM person",
            "UPDATE ingest_key_claim SET location_id = 0",
            "DELETE FROM ingest_key_claim",
            "INSERT INTO credential (person_id, kind, label, digest) \
             VALUES (1, 'device', 'x', sha256('x'))",
            "UPDATE credential SET revoked_at = now()",
            "DELETE FROM credential",
            "UPDATE meeting SET contacts = contacts",
            "DELETE FROM meeting",
            "SELECT count(*) FROM meeting_position",
            "SELECT location_maintain(localtimestamp, 1, NULL)",
            "SELECT ingest_key_claim_prune(localtimestamp, interval '1 year', 1)",
            "SELECT meeting_position_maintain(localtimestamp, 1, NULL)",
            "SELECT meeting_prune(localtimestamp, interval '1 year', 1)",
            "SELECT person_erase(1)",
            "SELECT person_hold(ARRAY[1])",
            "SELECT ingest_key_claim_forget(ARRAY[1])",
        ],
    ),
    (
        "writer",
        &[
            "UPDATE location SET person_id = person_id",
            "DELETE FROM location",
            "SELECT coordinate FROM location",
            "INSERT INTO person (first_name, last_name, company_name) VALUES ('a', 'b', 'c')",
            "UPDATE person SET first_name = 'x'",
            "DELETE FROM person",
            "SELECT first_name FROM person",
            "SELECT nextval('location_id_seq')",
            "SELECT count(*) FROM ingest_key_claim",
            "SELECT id FROM location_history",
            "DROP TABLE location_default",
            "ALTER TABLE location DETACH PARTITION location_default",
            "SELECT count(*) FROM meeting",
            "DELETE FROM meeting",
            "INSERT INTO meeting_position (location_id, person_id, creation_time, lat, lon, cell) \
             VALUES (99, 1, localtimestamp, 45, 7, 1)",
            "DROP TABLE meeting_position_default",
            "SELECT digest FROM credential",
            "INSERT INTO credential (person_id, kind, label, digest) \
             VALUES (1, 'device', 'x', sha256('x'))",
            "SELECT person_erase(1)",
            "SELECT person_hold(ARRAY[1])",
            "SELECT erased_at FROM erased_person",
            "DELETE FROM ingest_key_claim",
        ],
    ),
    (
        "meetings",
        &[
            "INSERT INTO location (id, person_id, coordinate) VALUES (99, 1, ST_MakePoint(7, 45))",
            "SELECT coordinate FROM location",
            "SELECT ingest_key FROM location",
            "SELECT written_by FROM location",
            "UPDATE location SET person_id = person_id",
            "DELETE FROM location",
            "SELECT first_name FROM person",
            "INSERT INTO person (first_name, last_name, company_name) VALUES ('a', 'b', 'c')",
            "DELETE FROM person",
            "SELECT count(*) FROM ingest_key_claim",
            "SELECT nextval('location_id_seq')",
            "SELECT nextval('person_id_seq')",
            "UPDATE meeting_position SET lat = lat",
            "DELETE FROM meeting_position",
            "SELECT location_id FROM meeting_position_history",
            "DROP TABLE meeting_position_default",
            "SELECT location_maintain(localtimestamp, 1, NULL)",
            "SELECT ingest_key_claim_prune(localtimestamp, interval '1 year', 1)",
            "SELECT meeting_position_maintain(localtimestamp, 1, NULL)",
            "SELECT meeting_prune(localtimestamp, interval '1 year', 1)",
            "SELECT digest FROM credential",
            "UPDATE credential SET revoked_at = now()",
            "SELECT person_erase(1)",
            "SELECT count(*) FROM erased_person",
            "SELECT ingest_key_claim_forget(ARRAY[1])",
        ],
    ),
];

/// GET `url`: status and JSON body.
async fn get(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = http.get(url).send().await.expect("an answer");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

/// On a fresh database, as the dev overlay deploys it: the roles and the
/// migrations as the Job makes them, then the API over HTTP, the edge's,
/// the writer's and the meetings' store calls, each as its own role, and
/// every role refused the rest.
#[tokio::test]
async fn each_role_may_do_what_its_target_does_and_nothing_more() {
    let rendered = overlay("dev");
    let dir = TempDir::new().unwrap();
    let passwords = generate_passwords(dir.path());
    let pg = postgres_like_the_image(&rendered, &passwords).await;
    let nats = start_nats(&rendered, &passwords);
    apply_roles(&rendered, &passwords, &pg).await;
    run_job(&rendered, "migrate", &nats, &pg, &passwords).await;
    let url = |target: &str| database_url(&rendered, target, &passwords, &pg);

    // The owner role owns every table and is no superuser; no target's role
    // is either.
    let owner = connect(&url("migrate")).await.expect("the owner logs in");
    let migrate_role: String = value(&owner, "SELECT current_user::text").await;
    let tables = owners(&owner).await;
    assert_eq!(
        tables.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "credential",
            "erased_person",
            "ingest_key_claim",
            "location",
            "meeting",
            "meeting_event_cursor",
            "meeting_position",
            "person",
            "udaconnect_migrations"
        ]
    );
    assert!(tables.values().all(|o| *o == migrate_role), "{tables:?}");
    let foreign_partitions: i64 = value(
        &owner,
        "SELECT count(*) FROM pg_class WHERE relispartition AND relkind = 'r' \
         AND relowner <> current_user::regrole",
    )
    .await;
    assert_eq!(foreign_partitions, 0, "the partitions are the owner's");
    for target in ["migrate", "api", "ingest", "writer", "meetings"] {
        let client = connect(&url(target)).await.expect("the role logs in");
        let powers: bool = value(
            &client,
            "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls \
             FROM pg_roles WHERE rolname = current_user",
        )
        .await;
        assert!(!powers, "{target}'s role has powers it does not need");
    }

    // The API, the real target as the manifests run it, closed and called
    // with the organiser's token of the generated Secret: persons created
    // and read, a phone's token made, then (below) the connections and
    // counts of stored locations.
    let api = spawn(&rendered, "api", &nats, &pg, &passwords);
    let http = client_with(&organiser_token(&rendered, &passwords));
    let base = api.base_url();
    let mut ids = Vec::new();
    for name in ["Ada", "Bob"] {
        let response = http
            .post(format!("{base}/api/v2/persons"))
            .json(&json!({"first_name": name, "last_name": "Roles", "company_name": "Co"}))
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status().as_u16(), 201, "{name}");
        let person: Value = response.json().await.expect("a person");
        ids.push(i32::try_from(person["id"].as_i64().expect("an id")).expect("an int4 id"));
    }
    let (status, persons) = get(&http, &format!("{base}/api/persons")).await;
    assert_eq!(status, 200, "{persons}");
    assert_eq!(persons.as_array().map(Vec::len), Some(2), "{persons}");
    let response = http
        .post(format!("{base}/api/v2/persons/{}/credentials", ids[0]))
        .json(&json!({"kind": "device", "label": "Ada's phone"}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 201, "a phone's token");
    let phone: Value = response.json().await.expect("a credential");
    let (status, listed) = get(
        &http,
        &format!("{base}/api/v2/persons/{}/credentials", ids[0]),
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["credentials"][0]["id"], phone["id"], "{listed}");

    // The edge: person ids, one person, location ids from the sequence,
    // idempotency keys claimed and read back.
    let edge = store(&url("ingest"));
    assert_eq!(edge.person_ids_after(0).await.expect("person ids"), ids);
    // The phones' tokens, looked up by their digest.
    let token = phone["token"].as_str().expect("a token");
    let found = edge
        .credential_by_digest(&udaconnect::access::token::digest(token))
        .await
        .expect("looked up")
        .expect("the phone's credential");
    assert_eq!(
        (found.person_id, found.id),
        (ids[0], phone["id"].as_i64().expect("an id"))
    );
    let ada = edge.person(ids[0]).await.expect("a person").expect("Ada");
    assert_eq!(ada.first_name, "Ada");
    let reserved = edge.reserve_location_ids(2).await.expect("location ids");
    let claim = KeyClaim {
        key: format!("roles:{}", reserved[0]),
        id: reserved[0],
        person_id: ids[0],
        position: Position {
            lat: 45.0,
            lon: 7.0,
        },
        time: at("2021-03-01T10:00:00Z"),
    };
    let retry = KeyClaim {
        id: reserved[1],
        ..claim.clone()
    };
    assert_eq!(
        edge.claim_keys(std::slice::from_ref(&claim))
            .await
            .expect("claimed"),
        [ClaimOutcome::Claimed]
    );
    assert_eq!(
        edge.claim_keys(&[retry]).await.expect("read back"),
        [ClaimOutcome::Same(reserved[0])]
    );

    // The writer: a batch with the edge's ids, its duplicates left alone
    // (by id and by key), a location of nobody set aside.
    let writer = store(&url("writer"));
    let batch: Vec<LocationRecord> = reserved
        .iter()
        .zip(&ids)
        .map(|(id, person)| LocationRecord {
            id: *id,
            person_id: *person,
            position: Position {
                lat: 45.0,
                lon: 7.0,
            },
            time: at("2021-03-01T10:00:00Z"),
            key: Some(format!("roles:{id}")),
        })
        .collect();
    let report = writer.insert_locations(&batch).await.expect("stored");
    assert_eq!((report.inserted, report.duplicates), (2, 0), "{report:?}");
    let mut again = batch.clone();
    again[1].id += 100;
    let nobody = LocationRecord {
        id: reserved[0] + 200,
        person_id: 9_999,
        key: None,
        ..batch[0].clone()
    };
    again.push(nobody.clone());
    let report = writer.insert_locations(&again).await.expect("stored");
    assert_eq!((report.inserted, report.duplicates), (0, 2), "{report:?}");
    assert_eq!(report.unknown_person, vec![nobody.id]);

    // The writer keeps the partitions of the locations and of the
    // meetings' positions, through the owner's functions: ten days ahead
    // (the migrations made seven; eight if a day began since), and a
    // year's retention, which drops nothing yet.
    let done = writer
        .maintain(
            Timestamp::now(),
            10,
            Some(std::time::Duration::from_secs(365 * 24 * 60 * 60)),
        )
        .await
        .expect("maintained");
    assert!(
        (3..=4).contains(&done.created) && done.dropped == 0,
        "{done:?}"
    );
    assert!(
        (3..=4).contains(&done.positions_created)
            && done.positions_dropped == 0
            && done.meetings_pruned == 0,
        "{done:?}"
    );

    // The meetings target folds the stored locations in, as the writers
    // announce them: Ada and Bob together at 10:00 and at 10:06 are two
    // meetings (more than the 3 minutes' gap apart), which their meeting at
    // 10:03 joins into one (an update and a delete); folding the same
    // locations again changes nothing.
    let meetings = store(&url("meetings"));
    let rules = MeetingRules::new(5.0, 2 * 60_000_000, 3 * 60_000_000).expect("rules");
    let sighting = |id: i64, person: i32, time: &str| Sighting {
        id,
        person,
        at: at(time),
        position: Position {
            lat: 45.0,
            lon: 7.0,
        },
    };
    let (a, b) = (ids[0], ids[1]);
    let (first, last) = (reserved[0], reserved[1]);
    let apart = [
        sighting(first, a, "2021-03-01T10:00:00Z"),
        sighting(last, b, "2021-03-01T10:00:00Z"),
        sighting(last + 1, a, "2021-03-01T10:06:00Z"),
        sighting(last + 2, b, "2021-03-01T10:06:00Z"),
    ];
    let changes = meetings
        .apply_meetings(&rules, &apart)
        .await
        .expect("folded in");
    assert_eq!(
        (changes.applied, changes.started.len()),
        (4, 2),
        "{changes:?}"
    );
    let between = [
        sighting(last + 3, a, "2021-03-01T10:03:00Z"),
        sighting(last + 4, b, "2021-03-01T10:03:00Z"),
    ];
    let changes = meetings
        .apply_meetings(&rules, &between)
        .await
        .expect("folded in");
    assert_eq!(
        (changes.grown.len(), changes.joined.len()),
        (1, 1),
        "{changes:?}"
    );
    let again = meetings
        .apply_meetings(&rules, &[apart.as_slice(), between.as_slice()].concat())
        .await
        .expect("folded in again");
    assert_eq!((again.applied, again.already), (0, 6), "{again:?}");
    // Its backfill reads where and when the stored locations were, and
    // finds those folded in already left out.
    let last_id = meetings
        .last_location_id()
        .await
        .expect("the last location id");
    assert!(last_id > 0);
    let unfolded = meetings
        .unfolded_locations(0, last_id)
        .await
        .expect("the locations not folded in");
    assert!(
        unfolded
            .iter()
            .all(|s| !apart.iter().chain(&between).any(|f| f.id == s.id)),
        "{unfolded:?}"
    );
    // It reads the meetings written and records where its events are.
    let feed = meetings
        .meeting_feed(None, None, 10)
        .await
        .expect("the meetings' snapshot");
    meetings
        .save_event_cursor("meetings", &feed.cursor)
        .await
        .expect("the events' cursor recorded");
    assert_eq!(
        meetings.event_cursor("meetings").await.expect("read back"),
        Some(feed.cursor)
    );

    // The edge reads them too, for the phones' friends.
    let friends = edge
        .meetings(&MeetingQuery {
            person: a,
            start: at("2021-03-01T00:00:00Z"),
            end: at("2021-03-02T00:00:00Z"),
            after: None,
            limit: 10,
        })
        .await
        .expect("the edge reads the meetings");
    assert_eq!(friends.len(), 1, "{friends:?}");

    // Back on the API: Ada met Bob, once, from 10:00 to 10:06; the live
    // counts see both rows.
    let (status, page) = get(&http, &format!("{base}/api/v2/persons/{a}/meetings")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["meetings"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["meetings"][0]["with"]["id"], b, "{page}");
    assert_eq!(page["meetings"][0]["duration_s"], 360.0, "{page}");
    let connections = format!(
        "{base}/api/v2/persons/{}/connections?start=2021-03-01&end=2021-03-02&distance=1",
        ids[0]
    );
    let (status, page) = get(&http, &connections).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["contacts"][0]["person"]["id"], ids[1], "{page}");
    let compat = format!(
        "{base}/api/persons/{}/connection?start_date=2021-03-01&end_date=2021-03-02&distance=1",
        ids[0]
    );
    let (status, rows) = get(&http, &compat).await;
    assert_eq!(status, 200, "{rows}");
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    testkit::eventually("the live counts", PATIENCE, || async {
        let (_, stats) = get(&http, &format!("{base}/api/v2/stats")).await;
        (stats["persons"] == 2 && stats["locations"] == 2).then_some(())
    })
    .await;
    let (status, _) = get(&http, &format!("{base}/readyz")).await;
    assert_eq!(status, 200);

    // An erasure: the API erases a third person; the edge reads the
    // erasure, the writer drops a location of theirs still on its way,
    // the meetings target passes their sighting over.
    let watching = edge.erasures(None).await.expect("the erasures' cursor");
    let response = http
        .post(format!("{base}/api/v2/persons"))
        .json(&json!({"first_name": "Cy", "last_name": "Roles", "company_name": "Co"}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 201);
    let cy: Value = response.json().await.expect("a person");
    let cy = i32::try_from(cy["id"].as_i64().expect("an id")).expect("an int4 id");
    let erase = || async {
        http.delete(format!("{base}/api/v2/persons/{cy}"))
            .send()
            .await
            .expect("an answer")
            .status()
            .as_u16()
    };
    assert_eq!(erase().await, 204);
    assert_eq!(erase().await, 404);
    let erasures = edge
        .erasures(Some(&watching.cursor))
        .await
        .expect("the erasures");
    assert_eq!(erasures.persons, vec![cy]);
    let late = LocationRecord {
        id: edge.reserve_location_ids(1).await.expect("an id")[0],
        person_id: cy,
        key: Some("roles:late".to_owned()),
        ..batch[0].clone()
    };
    let report = writer
        .insert_locations(std::slice::from_ref(&late))
        .await
        .expect("dropped");
    assert_eq!(report.erased, vec![late.id], "{report:?}");
    let changes = meetings
        .apply_meetings(&rules, &[sighting(late.id, cy, "2021-03-01T10:00:00Z")])
        .await
        .expect("passed over");
    assert_eq!((changes.applied, changes.erased), (0, 1), "{changes:?}");

    // And nothing else.
    for (target, forbidden) in FORBIDDEN {
        let client = connect(&url(target)).await.expect("the role logs in");
        for sql in NOBODY_BUT_THE_OWNER.iter().chain(forbidden.iter()) {
            refused(&client, target, sql).await;
        }
    }
    // Every table is as it was: two persons, two locations, six folded-in
    // locations, one meeting.
    let counts: String = value(
        &owner,
        "SELECT (SELECT count(*) FROM person) || ' ' || (SELECT count(*) FROM location) \
         || ' ' || (SELECT count(*) FROM meeting_position) || ' ' || (SELECT count(*) FROM meeting)",
    )
    .await;
    assert_eq!(counts, "2 2 6 1");
}

/// A database an earlier deploy migrated as the superuser (version 3, its
/// tables the superuser's, rows in them): the Job gives its tables to the
/// owner role and migrates on as it, the targets' roles read the old rows;
/// and running the Job again with a changed password makes that password
/// the role's, and nothing else.
#[tokio::test]
async fn roles_take_over_an_earlier_deploys_tables_and_follow_the_secret() {
    let rendered = overlay("dev");
    let dir = TempDir::new().unwrap();
    let mut passwords = generate_passwords(dir.path());
    let pg = postgres_like_the_image(&rendered, &passwords).await;
    let nats = start_nats(&rendered, &passwords);

    // The earlier deploy, before roles existed: migrations 0001 to 0003 as
    // the superuser, recorded as `udaconnect migrate` records them, and
    // rows in its tables.
    let (user, db) = (
        server_setting(&rendered, "POSTGRES_USER"),
        server_setting(&rendered, "POSTGRES_DB"),
    );
    let superuser = format!(
        "postgres://{user}:{}@127.0.0.1:{}/{db}",
        passwords["postgres.env"]["POSTGRES_PASSWORD"],
        pg.port()
    );
    let earlier = connect(&superuser).await.expect("the superuser logs in");
    earlier
        .batch_execute(
            "CREATE TABLE udaconnect_migrations (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 checksum text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .expect("the migrations' record");
    for migration in MIGRATIONS.iter().filter(|migration| migration.version <= 3) {
        earlier
            .batch_execute(migration.sql)
            .await
            .expect("an earlier migration");
        earlier
            .execute(
                "INSERT INTO udaconnect_migrations (version, name, checksum) \
                 VALUES ($1, $2, encode(sha256(convert_to($3::text, 'UTF8')), 'hex'))",
                &[&migration.version, &migration.name, &migration.sql],
            )
            .await
            .expect("recorded");
    }
    earlier
        .batch_execute(
            "INSERT INTO person (first_name, last_name, company_name)
                 VALUES ('Old', 'Deploy', 'Co'), ('Older', 'Deploy', 'Co');
             INSERT INTO location (person_id, coordinate, creation_time)
                 SELECT id, ST_MakePoint(7, 45), '2021-03-01 10:00' FROM person;",
        )
        .await
        .expect("the earlier deploy's rows");
    let before = owners(&earlier).await;
    assert!(before.values().all(|o| *o == user), "{before:?}");

    apply_roles(&rendered, &passwords, &pg).await;
    run_job(&rendered, "migrate", &nats, &pg, &passwords).await;
    let url = |passwords: &Passwords, target: &str| database_url(&rendered, target, passwords, &pg);
    let owner = connect(&url(&passwords, "migrate"))
        .await
        .expect("the owner logs in");
    let migrate_role: String = value(&owner, "SELECT current_user::text").await;
    let after = owners(&owner).await;
    // The earlier tables, the claims' of 0007, the meetings' of 0008 and
    // 0012, the credentials' of 0014 and the erasures' of 0016.
    let mut expected: Vec<&str> = before.keys().map(String::as_str).collect();
    expected.extend([
        "credential",
        "erased_person",
        "ingest_key_claim",
        "meeting",
        "meeting_event_cursor",
        "meeting_position",
    ]);
    expected.sort_unstable();
    assert_eq!(
        after.keys().map(String::as_str).collect::<Vec<_>>(),
        expected
    );
    assert!(after.values().all(|o| *o == migrate_role), "{after:?}");
    let versions: String = value(
        &owner,
        "SELECT string_agg(version::text, ',' ORDER BY version) FROM udaconnect_migrations",
    )
    .await;
    assert_eq!(versions, "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17");
    let foreign_functions: i64 = value(
        &owner,
        "SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace \
         AND p.proowner <> current_user::regrole \
         AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass \
                         AND d.objid = p.oid AND d.deptype = 'e')",
    )
    .await;
    assert_eq!(
        foreign_functions, 0,
        "the grid's functions follow the tables"
    );
    let grid_functions: i64 = value(
        &owner,
        "SELECT count(*) FROM pg_proc WHERE proname LIKE 'location\\_cell%' \
         AND proowner = current_user::regrole",
    )
    .await;
    assert_eq!(grid_functions, 3);
    let sequences: i64 = value(
        &owner,
        "SELECT count(*) FROM pg_class WHERE relkind = 'S' AND relowner = current_user::regrole",
    )
    .await;
    // Persons', locations', meetings' and credentials'.
    assert_eq!(sequences, 4, "the serial sequences follow their tables");

    // The old rows, read and added to as the targets do.
    let api = store(&url(&passwords, "api"));
    let persons = api.persons().await.expect("persons");
    assert_eq!(persons.len(), 2);
    assert_eq!(api.stats().await.expect("counts").locations, 2);
    let ids = store(&url(&passwords, "ingest"))
        .reserve_location_ids(1)
        .await
        .expect("an id");
    let report = store(&url(&passwords, "writer"))
        .insert_locations(&[LocationRecord {
            id: ids[0],
            person_id: persons[0].id,
            position: Position {
                lat: 45.0,
                lon: 7.0,
            },
            time: at("2021-03-01T10:05:00Z"),
            key: None,
        }])
        .await
        .expect("stored");
    assert_eq!(report.inserted, 1, "{report:?}");

    // A changed Secret: the Job runs again (as every `make up` does) and
    // the new password is the role's; the old one is refused.
    let old_api = url(&passwords, "api");
    passwords
        .get_mut("postgres.env")
        .expect("postgres.env")
        .insert(
            "POSTGRES_API_PASSWORD".to_owned(),
            format!("p{}", "1".repeat(47)),
        );
    apply_roles(&rendered, &passwords, &pg).await;
    run_job(&rendered, "migrate", &nats, &pg, &passwords).await;
    let Err(err) = connect(&old_api).await else {
        panic!("the old password still logs in");
    };
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
    let api = connect(&url(&passwords, "api"))
        .await
        .expect("the new password logs in");
    let persons: i64 = value(&api, "SELECT count(*) FROM person").await;
    assert_eq!(persons, 2);
    refused(&api, "api", "DELETE FROM location").await;
    let after_again = owners(&owner).await;
    assert_eq!(after_again, after);
}
