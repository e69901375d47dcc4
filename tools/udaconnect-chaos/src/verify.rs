//! The checks, against the database and the dead-letter stream: every
//! acknowledged key stored once, no rejected key stored, no location twice
//! (each was sent with a time of its own), and the dead letters exactly
//! the poison put on the bus.

use std::collections::{HashMap, HashSet};

use platform::bus::BusStream;
use udaconnect::bus_wire;

/// What the checks found.
#[derive(Debug, Default)]
pub struct Findings {
    pub in_db: u64,
    pub lost: u64,
    pub duplicated: u64,
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

/// Checks the `location` table against the keys acknowledged and rejected.
pub async fn database(
    url: &str,
    accepted: &HashSet<String>,
    rejected: &HashSet<String>,
) -> anyhow::Result<Findings> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let mut findings = Findings::default();
    let rows = client
        .query(
            "SELECT ingest_key, count(*) FROM location WHERE ingest_key IS NOT NULL GROUP BY ingest_key",
            &[],
        )
        .await?;
    let mut stored: HashMap<String, i64> = HashMap::with_capacity(rows.len());
    for row in &rows {
        stored.insert(row.try_get(0)?, row.try_get(1)?);
    }
    for key in accepted {
        match stored.get(key) {
            None => {
                findings.lost += 1;
                findings.note(format!("acknowledged {key} is not stored"));
            }
            Some(1) => findings.in_db += 1,
            Some(n) => {
                findings.in_db += 1;
                findings.duplicated += u64::try_from(n - 1).unwrap_or(0);
                findings.note(format!("{key} stored {n} times"));
            }
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
