//! The checks, against the database and the dead-letter stream: every
//! acknowledged key stored once, under the id answered and with the
//! location first acknowledged; every conflict naming that id; no rejected
//! key stored; no location twice (each was sent with a time of its own);
//! and the dead letters exactly the poison put on the bus.

use std::collections::{HashMap, HashSet};

use platform::bus::BusStream;
use udaconnect::bus_wire;

use crate::clients::Acked;

/// What the checks found.
#[derive(Debug, Default)]
pub struct Findings {
    pub in_db: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// Acknowledged keys stored under another id than the one answered.
    pub wrong_id: u64,
    /// Acknowledged keys stored with another location than the one first
    /// acknowledged.
    pub wrong_location: u64,
    pub rejected_stored: u64,
    pub dead_letters: u64,
    pub unexpected_dead_letters: u64,
    pub examples: Vec<String>,
}

impl Findings {
    fn note(&mut self, example: String) {
        if self.examples.len() < 10 {
            self.examples.push(example);
        }
    }
}

/// A keyed row as stored.
struct Row {
    id: i64,
    location: Acked,
    count: i64,
}

/// Checks the `location` table against the keys acknowledged (with what
/// each was answered and first sent), the conflicts (with the id each
/// named) and the keys rejected.
pub async fn database(
    url: &str,
    accepted: &HashMap<String, Acked>,
    conflicts: &[(String, i64)],
    rejected: &HashSet<String>,
) -> anyhow::Result<Findings> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let mut findings = Findings::default();
    let rows = client
        .query(
            "SELECT ingest_key, min(id), count(*), min(person_id)::int8, \
                    min(ST_X(coordinate)), min(ST_Y(coordinate)), \
                    min((extract(epoch FROM creation_time) * 1000000)::int8) \
             FROM location WHERE ingest_key IS NOT NULL GROUP BY ingest_key",
            &[],
        )
        .await?;
    let mut stored: HashMap<String, Row> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let id: i64 = row.try_get(1)?;
        stored.insert(
            row.try_get(0)?,
            Row {
                id,
                count: row.try_get(2)?,
                location: Acked {
                    id,
                    person_id: row.try_get(3)?,
                    lon: row.try_get(4)?,
                    lat: row.try_get(5)?,
                    time_us: row.try_get(6)?,
                },
            },
        );
    }
    for (key, acked) in accepted {
        let Some(row) = stored.get(key) else {
            findings.lost += 1;
            findings.note(format!(
                "acknowledged {key} (id {}) is not stored",
                acked.id
            ));
            continue;
        };
        findings.in_db += 1;
        if row.count > 1 {
            findings.duplicated += u64::try_from(row.count - 1).unwrap_or(0);
            findings.note(format!("{key} stored {} times", row.count));
        }
        if row.id != acked.id {
            findings.wrong_id += 1;
            findings.note(format!("{key} answered {}, stored as {}", acked.id, row.id));
        } else if row.location != *acked {
            findings.wrong_location += 1;
            findings.note(format!(
                "{key} stored as {:?}, first acknowledged as {acked:?}",
                row.location
            ));
        }
    }
    // A conflict names the location its key stands for: stored under that
    // id (and checked above with the location first acknowledged).
    for (key, named) in conflicts {
        if stored.get(key).map(|row| row.id) != Some(*named) {
            findings.wrong_id += 1;
            findings.note(format!(
                "a conflict of {key} named {named}, which is not its row"
            ));
        }
    }
    for key in rejected {
        if stored.contains_key(key) {
            findings.rejected_stored += 1;
            findings.note(format!("rejected {key} is stored"));
        }
    }
    // Each location was sent with a time of its own: the same time twice
    // is one location stored twice, whatever its key.
    let twice: i64 = client
        .query_one(
            "SELECT count(*) - count(DISTINCT creation_time) FROM location WHERE ingest_key IS NOT NULL",
            &[],
        )
        .await?
        .try_get(0)?;
    if twice > 0 {
        findings.duplicated += u64::try_from(twice).unwrap_or(0);
        findings.note(format!("{twice} locations stored twice under other keys"));
    }
    let strays: i64 = client
        .query_one(
            "SELECT count(*) FROM location WHERE ingest_key IS NULL",
            &[],
        )
        .await?
        .try_get(0)?;
    if strays > 0 {
        findings.note(format!(
            "{strays} rows without a key (poison that was stored?)"
        ));
        findings.rejected_stored += u64::try_from(strays).unwrap_or(0);
    }
    Ok(findings)
}

/// Checks the dead letters: one per poison message (by its source
/// sequence), each one of those put on the bus.
pub async fn dead_letters(
    dead: &BusStream,
    poison_ids: &HashSet<i64>,
    poison_junk: &HashSet<Vec<u8>>,
    findings: &mut Findings,
) -> anyhow::Result<()> {
    let mut sources = HashSet::new();
    let mut from = 1;
    loop {
        let page = dead.fetch(from, 500).await?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        for envelope in &page {
            let letter = bus_wire::read_dead_letter(&envelope.payload)?;
            let expected = match letter.reason.as_str() {
                "unknown_person" => bus_wire::decode(&letter.payload)
                    .map(|records| records.iter().all(|record| poison_ids.contains(&record.id)))
                    .unwrap_or(false),
                _ => poison_junk.contains(&letter.payload),
            };
            if !expected {
                findings.unexpected_dead_letters += 1;
                findings.note(format!(
                    "unexpected dead letter: {} {}",
                    letter.reason, letter.detail
                ));
            } else if sources.insert(letter.payload.clone()) {
                findings.dead_letters += 1;
            }
        }
    }
    Ok(())
}
