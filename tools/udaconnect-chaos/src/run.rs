//! One run: start everything, send while faults fire on schedule until
//! enough locations were acknowledged, let the writers drain the stream,
//! then check.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use bytes::Bytes;
use platform::bus::{Bus, BusStream, NatsArgs, NatsBus, Retention, StreamSettings};
use testkit::{AppProcess, NatsServer, PostgresServer, eventually};
use tokio_util::sync::CancellationToken;
use udaconnect::bus_wire;
use udaconnect_domain::{LocationRecord, Position, Timestamp};

use crate::{
    ChaosArgs,
    clients::{ClientLog, client},
    faults::{self, Writer, lock},
    verify,
};

/// Persons the clients' locations belong to.
const PERSONS: i64 = 100;
/// Writers sharing the stream.
const WRITERS: usize = 2;
/// How long a delivery may go unacknowledged before it is delivered again.
const WRITER_ACK_WAIT: Duration = Duration::from_secs(5);

/// What a run found.
#[derive(Debug)]
pub struct Report {
    pub accepted: u64,
    pub in_db: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub rejected: u64,
    pub rejected_stored: u64,
    /// Acknowledged keys stored under another id than answered, and
    /// conflicts naming an id that is not their key's.
    pub wrong_id: u64,
    /// Acknowledged keys stored with another location than first sent.
    pub wrong_location: u64,
    /// Keys sent again with another location, each answered a conflict.
    pub conflicts: u64,
    /// Answers that broke the edge's promises (see `clients`).
    pub mismatches: u64,
    pub dead_letters: u64,
    pub poison: u32,
    pub unexpected_dead_letters: u64,
    pub writer_kills: u32,
    pub broker_kills: u32,
    pub db_restarts: u32,
    pub retries: u64,
    pub seconds: f64,
}

impl Report {
    /// Nothing rejected was stored, every id answered is the id stored
    /// with the location first acknowledged, every answer kept its
    /// promise, and the dead letters are the poison.
    pub fn clean(&self) -> bool {
        self.rejected_stored == 0
            && self.wrong_id == 0
            && self.wrong_location == 0
            && self.mismatches == 0
            && self.unexpected_dead_letters == 0
            && self.dead_letters == u64::from(self.poison)
    }

    /// The `RESULT` payload.
    pub fn to_json(&self) -> String {
        format!(
            r#"{{"accepted": {}, "in_db": {}, "lost": {}, "duplicated": {}, "wrong_id": {}, "wrong_location": {}, "conflicts": {}, "mismatches": {}, "writer_kills": {}, "broker_kills": {}, "db_restarts": {}, "seconds": {:.1}, "rejected": {}, "rejected_stored": {}, "dead_letters": {}, "poison": {}, "client_retries": {}}}"#,
            self.accepted,
            self.in_db,
            self.lost,
            self.duplicated,
            self.wrong_id,
            self.wrong_location,
            self.conflicts,
            self.mismatches,
            self.writer_kills,
            self.broker_kills,
            self.db_restarts,
            self.seconds,
            self.rejected,
            self.rejected_stored,
            self.dead_letters,
            self.poison,
            self.retries
        )
    }
}

/// How long the writers may take to store everything once the clients stop.
const DRAIN: Duration = Duration::from_secs(300);

/// What the run waits for before it checks.
struct Expected<'a> {
    db: &'a str,
    accepted: usize,
    poison: u32,
}

/// Waits until the database holds as many keyed locations as were
/// acknowledged and the dead-letter stream as many letters as poison was
/// put on the bus. The writers' consumer is not what is waited on: after a
/// broker SIGKILL, nats-server 2.9 may keep a removed message pending for
/// good ("deleted message" at every redelivery), or an acknowledged one in
/// the stream. If that does not happen within [`DRAIN`], says what the
/// writers and the broker last logged; the checks then tell what is missing.
async fn drain(
    expected: &Expected<'_>,
    queue: (&BusStream, &BusStream),
    writers: &[Arc<Mutex<Writer>>],
    broker: &Arc<Mutex<NatsServer>>,
) -> anyhow::Result<()> {
    let (locations, dead) = queue;
    let (client, connection) = tokio_postgres::connect(expected.db, tokio_postgres::NoTls).await?;
    let connection = tokio::spawn(connection);
    let give_up = Instant::now() + DRAIN;
    let (mut stored, mut letters) = (0, 0);
    while Instant::now() < give_up {
        if let Ok(Ok(row)) = tokio::time::timeout(
            Duration::from_secs(5),
            client.query_one(
                "SELECT count(*) FROM location WHERE ingest_key IS NOT NULL",
                &[],
            ),
        )
        .await
        {
            stored = usize::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0);
        }
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), dead.messages()).await {
            letters = n;
        }
        if stored >= expected.accepted && letters >= u64::from(expected.poison) {
            connection.abort();
            if let Ok(Ok(left)) =
                tokio::time::timeout(Duration::from_secs(5), locations.messages()).await
                && left > 0
            {
                eprintln!("chaos: the stream still counts {left} messages, stored already");
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    connection.abort();
    eprintln!(
        "chaos: after {DRAIN:?} the database holds {stored} of {} acknowledged locations, \
         the dead letters {letters} of {}",
        expected.accepted, expected.poison
    );
    for (n, writer) in writers.iter().enumerate() {
        let output = lock(writer).process.output();
        let tail = &output[output.len().saturating_sub(15)..];
        eprintln!("chaos: writer {n} last logged:\n  {}", tail.join("\n  "));
    }
    let log = lock(broker).log();
    let lines: Vec<&str> = log.lines().collect();
    let tail = &lines[lines.len().saturating_sub(15)..];
    eprintln!("chaos: nats-server last logged:\n  {}", tail.join("\n  "));
    Ok(())
}

fn spawn(binary: &std::path::Path, target: &str, envs: &[(&'static str, String)]) -> AppProcess {
    AppProcess::spawn(binary, "UDACONNECT", &[target], envs)
}

pub async fn run(args: ChaosArgs) -> anyhow::Result<Report> {
    let started = Instant::now();
    let binary = args.binary()?;
    let (nats, pg) = tokio::task::spawn_blocking(|| (NatsServer::start(), PostgresServer::start()))
        .await
        .context("start nats-server and PostgreSQL")?;
    let nats_url = nats.url();
    let db = pg.create_database("chaos");
    pg.psql("chaos", "CREATE EXTENSION postgis");
    eprintln!(
        "chaos: nats-server at {nats_url} (store {}), PostgreSQL at {db}",
        nats.store().display()
    );
    let broker = Arc::new(Mutex::new(nats));
    let pg = Arc::new(Mutex::new(pg));

    let common = vec![
        ("NATS_URL", nats_url.clone()),
        ("DATABASE_URL", db.clone()),
        ("RUST_LOG", "warn,udaconnect=info,platform=info".to_owned()),
        ("UDACONNECT_SHUTDOWN_TIMEOUT", "5s".to_owned()),
        // The pipeline's losses measured, not the tokens: no token needed.
        ("UDACONNECT_OPEN_API", "true".to_owned()),
    ];
    let mut edge_envs = common.clone();
    edge_envs.extend([
        ("UDACONNECT_GRPC_ADDR", "127.0.0.1:0".to_owned()),
        ("UDACONNECT_INGEST_RETRY_AFTER", "1s".to_owned()),
    ]);
    let edge = tokio::task::block_in_place(|| spawn(&binary, "ingest", &edge_envs));
    // The edge migrates the database; then the persons are made.
    let latest = udaconnect_store::MIGRATIONS
        .last()
        .map_or(0, |migration| migration.version);
    let (client_db, connection) =
        eventually("the migrated database", Duration::from_secs(60), || async {
            let (client, connection) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
                .await
                .ok()?;
            let handle = tokio::spawn(connection);
            let migrated = client
                .query_one(
                    "SELECT count(*) FROM udaconnect_migrations WHERE version = $1",
                    &[&latest],
                )
                .await
                .ok()?
                .try_get::<_, i64>(0)
                .ok()?;
            if migrated == 1 {
                Some((client, handle))
            } else {
                handle.abort();
                None
            }
        })
        .await;
    let persons: Vec<i64> = client_db
        .query(
            "INSERT INTO person (first_name, last_name, company_name) \
             SELECT 'Chaos', 'Person ' || n, 'Co' FROM generate_series(1, $1::int8) AS n RETURNING id::int8",
            &[&PERSONS],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    drop(client_db);
    connection.abort();

    let mut writer_envs = common.clone();
    writer_envs.extend([
        (
            "UDACONNECT_WRITER_ACK_WAIT",
            format!("{}s", WRITER_ACK_WAIT.as_secs()),
        ),
        ("UDACONNECT_MIGRATE", "false".to_owned()),
    ]);
    let writers: Vec<Arc<Mutex<Writer>>> = (0..WRITERS)
        .map(|_| {
            Arc::new(Mutex::new(Writer {
                process: tokio::task::block_in_place(|| spawn(&binary, "writer", &writer_envs)),
                binary: binary.clone(),
                envs: writer_envs.clone(),
            }))
        })
        .collect();
    let url = format!("{}/api/v2/locations:batch", edge.base_url());
    eprintln!(
        "chaos: edge at {}, {WRITERS} writers, {} clients; target {} locations",
        edge.base_url(),
        args.clients,
        args.locations
    );

    let progress = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let persons = Arc::new(persons);
    let clients: Vec<_> = (0..args.clients.max(1))
        .map(|n| {
            tokio::spawn(client(
                n as u64 + 1,
                url.clone(),
                Arc::clone(&persons),
                args.batch.max(1),
                args.locations,
                Arc::clone(&progress),
                stop.clone(),
            ))
        })
        .collect();

    // Poison, straight on the bus: bytes that are no message, and
    // well-formed messages of a person that does not exist.
    let bus = {
        let args = NatsArgs::default();
        Bus::Nats(
            NatsBus::connect(
                &nats_url.parse().map_err(anyhow::Error::msg)?,
                &args,
                "chaos",
            )
            .await?,
        )
    };
    let mut poison_ids = HashSet::new();
    let mut poison_junk = HashSet::new();
    for n in 0..args.poison {
        let id = format!("poison-{n}");
        let payload = if n % 2 == 0 {
            let junk = format!("\u{8}\u{ff}junk {n}").into_bytes();
            poison_junk.insert(junk.clone());
            Bytes::from(junk)
        } else {
            let record = LocationRecord {
                id: 9_000_000_000 + i64::from(n),
                person_id: 2_000_000_000,
                position: Position::new(37.55, -122.29)?,
                time: Timestamp::now(),
                key: None,
            };
            poison_ids.insert(record.id);
            bus_wire::encode(&[record])
        };
        eventually("the poison on the bus", Duration::from_secs(60), || {
            let (bus, payload, id) = (bus.clone(), payload.clone(), id.clone());
            async move { bus.publish("udaconnect.locations", &id, payload).await.ok() }
        })
        .await;
    }

    let fault = |count: u32, kind: u8| {
        let thresholds = faults::thresholds(count, args.locations);
        let (progress, broker, pg, writers) = (
            Arc::clone(&progress),
            Arc::clone(&broker),
            Arc::clone(&pg),
            writers.clone(),
        );
        tokio::spawn(async move {
            let mut fired = 0u32;
            for (n, threshold) in thresholds.into_iter().enumerate() {
                while progress.load(Ordering::Relaxed) < threshold {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                match kind {
                    0 => faults::crash_writer(&writers[n % writers.len()]).await,
                    1 => faults::crash_broker(&broker).await,
                    _ => faults::restart_database(&pg).await,
                }
                fired += 1;
                eprintln!(
                    "chaos: fault {kind} #{fired} at {} acknowledged",
                    progress.load(Ordering::Relaxed)
                );
            }
            fired
        })
    };
    let writer_task = fault(args.writer_kills, 0);
    let broker_task = fault(args.broker_kills, 1);
    let db_task = fault(args.db_restarts, 2);

    let mut last = (0, Instant::now());
    let mut reported = Instant::now();
    while progress.load(Ordering::Relaxed) < args.locations {
        let now = progress.load(Ordering::Relaxed);
        if now > last.0 {
            last = (now, Instant::now());
        }
        anyhow::ensure!(
            last.1.elapsed() < args.stall(),
            "nothing acknowledged for {:?} at {now}",
            args.stall()
        );
        if reported.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "chaos: {now}/{} acknowledged, {:.0} s",
                args.locations,
                started.elapsed().as_secs_f64()
            );
            reported = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let writer_kills = writer_task.await?;
    let broker_kills = broker_task.await?;
    let db_restarts = db_task.await?;
    stop.cancel();
    let mut accepted = HashMap::new();
    let mut rejected = HashSet::new();
    let mut conflicts = Vec::new();
    let (mut mismatches, mut retries) = (0, 0);
    for task in clients {
        let log: ClientLog = task.await?;
        for example in &log.examples {
            eprintln!("chaos: {example}");
        }
        accepted.extend(log.accepted);
        rejected.extend(log.rejected);
        conflicts.extend(log.conflicts);
        mismatches += log.mismatches;
        retries += log.retries;
    }
    eprintln!(
        "chaos: {} acknowledged, {} rejected, {} conflicts named; waiting for the writers",
        accepted.len(),
        rejected.len(),
        conflicts.len()
    );

    // The writers drain the stream.
    let locations = bus.stream(StreamSettings {
        retention: Retention::WorkQueue,
        ..StreamSettings::log("LOCATIONS", "udaconnect.locations", 100_000)
    });
    let dead = bus.stream(StreamSettings::log(
        "LOCATIONS_DEAD",
        "udaconnect.locations.dead",
        1_000_000,
    ));
    let expected = Expected {
        db: &db,
        accepted: accepted.len(),
        poison: args.poison,
    };
    drain(&expected, (&locations, &dead), &writers, &broker).await?;
    eprintln!("chaos: checking the database");
    let mut findings = verify::database(&db, &accepted, &conflicts, &rejected).await?;
    eprintln!("chaos: checking the dead letters");
    verify::dead_letters(&dead, &poison_ids, &poison_junk, &mut findings).await?;
    for example in &findings.examples {
        eprintln!("chaos: {example}");
    }
    for writer in &writers {
        lock(writer).process.kill();
    }
    drop(edge);
    Ok(Report {
        accepted: u64::try_from(accepted.len()).unwrap_or(u64::MAX),
        in_db: findings.in_db,
        lost: findings.lost,
        duplicated: findings.duplicated,
        rejected: u64::try_from(rejected.len()).unwrap_or(u64::MAX),
        rejected_stored: findings.rejected_stored,
        wrong_id: findings.wrong_id,
        wrong_location: findings.wrong_location,
        conflicts: u64::try_from(conflicts.len()).unwrap_or(u64::MAX),
        mismatches,
        dead_letters: findings.dead_letters,
        poison: args.poison,
        unexpected_dead_letters: findings.unexpected_dead_letters,
        writer_kills,
        broker_kills,
        db_restarts,
        retries,
        seconds: started.elapsed().as_secs_f64(),
    })
}
