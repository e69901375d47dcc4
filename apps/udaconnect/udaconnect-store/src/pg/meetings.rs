//! Meetings in PostgreSQL (migrations 0008 and 0013): a batch of stored
//! locations is folded in by one serializable transaction that skips the
//! locations folded in already (`meeting_position`, by id and time, so
//! that each is looked up in its day's partition), reads the ones they
//! may be contacts of by grid cell and time, folds the contacts into the
//! meetings they touch ([`udaconnect_domain::meeting::Sweep`]) and records
//! the locations as folded in. Serializable, so that processes folding
//! nearby locations at once never miss each other's: the database makes
//! one of them start again (SQLSTATE 40001), and that one then sees the
//! other's locations.
//!
//! Before it computes anything, a fold holds the persons of the new
//! locations and of those they may meet (`person_hold`, migration 0016)
//! and leaves out whoever was erased: an erasure (`person_erase`) then
//! either waits for the fold to commit and removes what it wrote, or has
//! removed the person first, and the fold, finding the row it would hold
//! deleted since its snapshot, starts again and finds them erased. So no
//! meeting names a person erased, whichever commits first.

use std::{
    collections::{BTreeMap, HashSet},
    pin::pin,
    time::Instant,
};

use chrono::NaiveDateTime;
use deadpool_postgres::Transaction;
use tokio_postgres::{
    IsolationLevel, Row, binary_copy::BinaryCopyInWriter, error::SqlState, types::ToSql,
    types::Type,
};
use udaconnect_domain::{
    LocationId, PersonId, StoreError, Timestamp,
    meeting::{
        Closest, FeedCursor, Kept, Meeting, MeetingChanges, MeetingFeed, MeetingQuery,
        MeetingRules, Sighting, Sweep, cell_of, cells_near, contacts_by_pair,
    },
};

use super::{
    PgStore,
    rows::{database, lat_lon},
    sql,
};

/// How often a batch is tried when the database makes it start again for
/// another's sake, before the caller is told to retry later.
const SERIALIZATION_ATTEMPTS: usize = 8;
/// The longest pause between two attempts (each pauses a random part of
/// it, times the attempt, so that two folders fall out of step).
const SERIALIZATION_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

impl PgStore {
    /// See [`udaconnect_domain::Store::apply_meetings`].
    pub(super) async fn fold_meetings(
        &self,
        rules: &MeetingRules,
        sightings: &[Sighting],
    ) -> Result<MeetingChanges, StoreError> {
        self.bounded("folding locations into meetings", async {
            let mut client = self.client().await?;
            let mut attempt = 1;
            loop {
                let transaction = client
                    .build_transaction()
                    .isolation_level(IsolationLevel::Serializable)
                    .start()
                    .await
                    .map_err(database)?;
                match fold(&transaction, rules, sightings).await {
                    Ok(mut changes) => match transaction.commit().await {
                        Ok(()) => {
                            changes.serialization_retries = attempt - 1;
                            return Ok(changes);
                        }
                        Err(err) if retry(&err, attempt) => {}
                        Err(err) => return Err(database(err)),
                    },
                    Err(err) if retry(&err, attempt) => {}
                    Err(err) => return Err(database(err)),
                }
                tracing::debug!(attempt, "meetings: a fold conflicted, started again");
                let pause = SERIALIZATION_PAUSE.mul_f64(jitter() * attempt as f64);
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
        })
        .await
    }

    /// See [`udaconnect_domain::Store::meetings`].
    pub(super) async fn meetings_of(&self, query: &MeetingQuery) -> Result<Vec<Kept>, StoreError> {
        let (below_start, below_id) = query.below();
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let rows = self
            .query(
                "reading a person's meetings",
                sql::MEETINGS_OF_PERSON,
                &[
                    &query.person,
                    &query.start.to_naive(),
                    &below_start.to_naive(),
                    &below_id,
                    &limit,
                ],
            )
            .await?;
        rows.iter().map(kept).collect()
    }
}

/// A number in `[0, 1)`, different each call (std's hasher keys are
/// random).
fn jitter() -> f64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1_u64 << 53) as f64
}

impl PgStore {
    /// See [`udaconnect_domain::Store::meeting_feed`]: the snapshot and the
    /// rows read in one repeatable-read transaction, so that the rows are
    /// exactly those its snapshot shows.
    pub(super) async fn feed(
        &self,
        since: Option<&FeedCursor>,
        person: Option<i32>,
        limit: usize,
    ) -> Result<MeetingFeed, StoreError> {
        self.bounded("reading the meetings written since", async {
            let mut client = self.client().await?;
            let transaction = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(database)?;
            let snapshot: String = transaction
                .query_one(sql::CURRENT_SNAPSHOT, &[])
                .await
                .map_err(database)?
                .try_get(0)
                .map_err(database)?;
            let cursor = FeedCursor::parse(&snapshot).ok_or_else(|| {
                StoreError::Corrupt(format!("the database's snapshot is not one: {snapshot}"))
            })?;
            let Some(since) = since else {
                return Ok(MeetingFeed {
                    cursor,
                    meetings: Vec::new(),
                    complete: true,
                });
            };
            let most = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
            let rows = transaction
                .query(
                    sql::MEETINGS_WRITTEN_SINCE,
                    &[&since.as_str(), &person, &most],
                )
                .await
                .map_err(database)?;
            let mut meetings = rows.iter().map(kept).collect::<Result<Vec<_>, _>>()?;
            let complete = meetings.len() <= limit;
            meetings.truncate(limit);
            Ok(MeetingFeed {
                cursor,
                meetings,
                complete,
            })
        })
        .await
    }
}

impl PgStore {
    /// See [`udaconnect_domain::Store::event_cursor`].
    pub(super) async fn read_event_cursor(
        &self,
        publisher: &str,
    ) -> Result<Option<FeedCursor>, StoreError> {
        let rows = self
            .query(
                "reading the events' cursor",
                sql::EVENT_CURSOR,
                &[&publisher],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let text: String = row.try_get(0).map_err(database)?;
        FeedCursor::parse(&text)
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt(format!("the events' cursor is not one: {text}")))
    }

    /// See [`udaconnect_domain::Store::save_event_cursor`].
    pub(super) async fn write_event_cursor(
        &self,
        publisher: &str,
        cursor: &FeedCursor,
    ) -> Result<(), StoreError> {
        self.query(
            "recording the events' cursor",
            sql::SAVE_EVENT_CURSOR,
            &[&publisher, &cursor.as_str()],
        )
        .await?;
        Ok(())
    }
}

fn retry(err: &tokio_postgres::Error, attempt: usize) -> bool {
    attempt < SERIALIZATION_ATTEMPTS
        && matches!(
            err.code(),
            Some(&SqlState::T_R_SERIALIZATION_FAILURE | &SqlState::T_R_DEADLOCK_DETECTED)
        )
}

/// `statement` run with `params`, prepared once per connection.
async fn query(
    transaction: &Transaction<'_>,
    statement: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let statement = transaction.prepare_cached(statement).await?;
    transaction.query(&statement, params).await
}

/// How long each step of one fold took, logged at debug with how much
/// it handled: where a fold's time goes.
struct Steps {
    last: Instant,
    marks: Vec<(&'static str, f64)>,
}

impl Steps {
    fn start() -> Self {
        Self {
            last: Instant::now(),
            marks: Vec::new(),
        }
    }

    /// The step `name` ended now.
    fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        let ms = now.duration_since(self.last).as_secs_f64() * 1000.0;
        self.marks.push((name, ms));
        self.last = now;
    }

    /// Milliseconds in step `name` (0 when it did not run).
    fn ms(&self, name: &str) -> f64 {
        self.marks
            .iter()
            .filter(|(step, _)| *step == name)
            .map(|(_, ms)| ms)
            .sum()
    }
}

async fn fold(
    transaction: &Transaction<'_>,
    rules: &MeetingRules,
    sightings: &[Sighting],
) -> Result<MeetingChanges, tokio_postgres::Error> {
    let mut steps = Steps::start();
    let mut changes = MeetingChanges::default();
    let ids: Vec<LocationId> = sightings.iter().map(|s| s.id).collect();
    let times: Vec<NaiveDateTime> = sightings.iter().map(|s| s.at.to_naive()).collect();
    let applied: HashSet<LocationId> = query(transaction, sql::MEETING_APPLIED, &[&ids, &times])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    steps.mark("applied");
    let mut fresh = HashSet::new();
    let mut new: Vec<Sighting> = sightings
        .iter()
        .filter(|s| !applied.contains(&s.id) && fresh.insert(s.id))
        .copied()
        .collect();
    changes.already = sightings.len() - new.len();
    if new.is_empty() {
        return Ok(changes);
    }
    let mut candidates = candidates(transaction, rules, &new).await?;
    steps.mark("candidates");
    let erased = hold(transaction, new.iter().chain(&candidates)).await?;
    steps.mark("hold");
    let before = new.len();
    new.retain(|s| !erased.contains(&s.person));
    candidates.retain(|s| !erased.contains(&s.person));
    changes.erased = before - new.len();
    changes.applied = new.len();
    if new.is_empty() {
        return Ok(changes);
    }
    let pairs = contacts_by_pair(rules, &new, &candidates);
    steps.mark("contacts");
    let kept = kept_of_pairs(transaction, rules, &pairs).await?;
    steps.mark("kept");
    let mut started = Vec::new();
    for (pair, contacts) in &pairs {
        let fold = Sweep::fold(
            rules,
            kept.get(pair).map_or(&[][..], Vec::as_slice),
            contacts,
        );
        changes.grown.extend(fold.grown);
        changes.joined.extend(fold.joined);
        started.extend(fold.started);
    }
    steps.mark("sweep");
    if !started.is_empty() {
        let count = i32::try_from(started.len()).unwrap_or(i32::MAX);
        let ids = query(transaction, sql::MEETING_IDS, &[&count]).await?;
        for (row, meeting) in ids.iter().zip(started) {
            changes.started.push(Kept {
                id: row.try_get(0)?,
                meeting,
            });
        }
        steps.mark("ids");
    }
    if !changes.joined.is_empty() {
        query(transaction, sql::DELETE_MEETINGS, &[&changes.joined]).await?;
        steps.mark("delete");
    }
    if !changes.grown.is_empty() {
        update(transaction, &changes.grown).await?;
        steps.mark("update");
    }
    if !changes.started.is_empty() {
        insert(transaction, &changes.started).await?;
        steps.mark("insert");
    }
    record(transaction, &new).await?;
    steps.mark("record");
    tracing::debug!(
        locations = sightings.len(),
        new = new.len(),
        candidates = candidates.len(),
        pairs = pairs.len(),
        kept = kept.values().map(Vec::len).sum::<usize>(),
        started = changes.started.len(),
        grown = changes.grown.len(),
        joined = changes.joined.len(),
        applied_ms = steps.ms("applied"),
        candidates_ms = steps.ms("candidates"),
        hold_ms = steps.ms("hold"),
        contacts_ms = steps.ms("contacts"),
        kept_ms = steps.ms("kept"),
        sweep_ms = steps.ms("sweep"),
        ids_ms = steps.ms("ids"),
        delete_ms = steps.ms("delete"),
        update_ms = steps.ms("update"),
        insert_ms = steps.ms("insert"),
        record_ms = steps.ms("record"),
        "meetings: a fold's steps"
    );
    Ok(changes)
}

/// The folded-in locations `new` ones may be contacts of: one probe per
/// cell near each, its time range merged with the others of that cell.
async fn candidates(
    transaction: &Transaction<'_>,
    rules: &MeetingRules,
    new: &[Sighting],
) -> Result<Vec<Sighting>, tokio_postgres::Error> {
    let within = rules.within_micros();
    let mut ranges: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for sighting in new {
        let t = sighting.at.micros();
        for cell in cells_near(sighting.position, rules.distance()) {
            ranges
                .entry(cell)
                .or_default()
                .push((t.saturating_sub(within), t.saturating_add(within)));
        }
    }
    let (mut cells, mut lows, mut highs) = (Vec::new(), Vec::new(), Vec::new());
    for (cell, mut spans) in ranges {
        spans.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for (low, high) in spans {
            match merged.last_mut() {
                Some(last) if low <= last.1 => last.1 = last.1.max(high),
                _ => merged.push((low, high)),
            }
        }
        for (low, high) in merged {
            cells.push(cell);
            lows.push(Timestamp::from_micros(low).to_naive());
            highs.push(Timestamp::from_micros(high).to_naive());
        }
    }
    let rows = query(
        transaction,
        sql::MEETING_CANDIDATES,
        &[&cells, &lows, &highs],
    )
    .await?;
    rows.iter().map(sighting).collect()
}

/// The persons of `sightings` held until the transaction ends, and those
/// of them erased ([`sql::HOLD_PERSONS`]).
async fn hold(
    transaction: &Transaction<'_>,
    sightings: impl Iterator<Item = &Sighting>,
) -> Result<HashSet<PersonId>, tokio_postgres::Error> {
    let mut persons: Vec<PersonId> = sightings.map(|s| s.person).collect();
    persons.sort_unstable();
    persons.dedup();
    query(transaction, sql::HOLD_PERSONS, &[&persons])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect()
}

fn sighting(row: &Row) -> Result<Sighting, tokio_postgres::Error> {
    let time: NaiveDateTime = row.try_get(2)?;
    Ok(Sighting {
        id: row.try_get(0)?,
        person: row.try_get(1)?,
        at: Timestamp::from_naive(time),
        position: udaconnect_domain::Position {
            lat: row.try_get(3)?,
            lon: row.try_get(4)?,
        },
    })
}

/// Each pair's kept meetings that its contacts may touch.
async fn kept_of_pairs(
    transaction: &Transaction<'_>,
    rules: &MeetingRules,
    pairs: &BTreeMap<(i32, i32), Vec<Meeting>>,
) -> Result<BTreeMap<(i32, i32), Vec<Kept>>, tokio_postgres::Error> {
    let (mut firsts, mut seconds, mut lows, mut highs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (pair, contacts) in pairs {
        if let Some((low, high)) = Sweep::span(rules, contacts) {
            firsts.push(pair.0);
            seconds.push(pair.1);
            lows.push(low.to_naive());
            highs.push(high.to_naive());
        }
    }
    let mut kept: BTreeMap<(i32, i32), Vec<Kept>> = BTreeMap::new();
    if firsts.is_empty() {
        return Ok(kept);
    }
    let rows = query(
        transaction,
        sql::MEETINGS_OF_PAIRS,
        &[&firsts, &seconds, &lows, &highs],
    )
    .await?;
    for row in &rows {
        let meeting = kept_row(row)?;
        kept.entry(meeting.meeting.persons)
            .or_default()
            .push(meeting);
    }
    Ok(kept)
}

/// Writes the meetings that grew ([`sql::UPDATE_MEETINGS`]).
async fn update(
    transaction: &Transaction<'_>,
    grown: &[Kept],
) -> Result<(), tokio_postgres::Error> {
    let time = |f: &dyn Fn(&Meeting) -> Timestamp| -> Vec<NaiveDateTime> {
        grown.iter().map(|k| f(&k.meeting).to_naive()).collect()
    };
    let ids: Vec<i64> = grown.iter().map(|k| k.id).collect();
    let contacts: Vec<i64> = grown.iter().map(|k| k.meeting.contacts).collect();
    let metres: Vec<f64> = grown.iter().map(|k| k.meeting.closest.metres).collect();
    let lats: Vec<f64> = grown.iter().map(|k| k.meeting.closest.place.lat).collect();
    let lons: Vec<f64> = grown.iter().map(|k| k.meeting.closest.place.lon).collect();
    let location_a: Vec<i64> = grown
        .iter()
        .map(|k| k.meeting.closest.locations.0)
        .collect();
    let location_b: Vec<i64> = grown
        .iter()
        .map(|k| k.meeting.closest.locations.1)
        .collect();
    query(
        transaction,
        sql::UPDATE_MEETINGS,
        &[
            &ids,
            &time(&|m| m.start),
            &time(&|m| m.end),
            &contacts,
            &metres,
            &time(&|m| m.closest.at),
            &lats,
            &lons,
            &location_a,
            &location_b,
        ],
    )
    .await?;
    Ok(())
}

/// Writes the meetings that began ([`sql::COPY_MEETINGS`]): a copy, the
/// cheapest way in for rows none of which exists yet.
async fn insert(
    transaction: &Transaction<'_>,
    started: &[Kept],
) -> Result<(), tokio_postgres::Error> {
    let sink = transaction.copy_in(sql::COPY_MEETINGS).await?;
    let mut writer = pin!(BinaryCopyInWriter::new(
        sink,
        &[
            Type::INT8,
            Type::INT4,
            Type::INT4,
            Type::TIMESTAMP,
            Type::TIMESTAMP,
            Type::INT8,
            Type::FLOAT8,
            Type::TIMESTAMP,
            Type::FLOAT8,
            Type::FLOAT8,
            Type::INT8,
            Type::INT8,
        ]
    ));
    for kept in started {
        let m = &kept.meeting;
        writer
            .as_mut()
            .write(&[
                &kept.id,
                &m.persons.0,
                &m.persons.1,
                &m.start.to_naive(),
                &m.end.to_naive(),
                &m.contacts,
                &m.closest.metres,
                &m.closest.at.to_naive(),
                &m.closest.place.lat,
                &m.closest.place.lon,
                &m.closest.locations.0,
                &m.closest.locations.1,
            ])
            .await?;
    }
    writer.finish().await?;
    Ok(())
}

/// Records `new` as folded in.
async fn record(
    transaction: &Transaction<'_>,
    new: &[Sighting],
) -> Result<(), tokio_postgres::Error> {
    let ids: Vec<i64> = new.iter().map(|s| s.id).collect();
    let persons: Vec<i32> = new.iter().map(|s| s.person).collect();
    let times: Vec<NaiveDateTime> = new.iter().map(|s| s.at.to_naive()).collect();
    let lats: Vec<f64> = new.iter().map(|s| s.position.lat).collect();
    let lons: Vec<f64> = new.iter().map(|s| s.position.lon).collect();
    let cells: Vec<i64> = new.iter().map(|s| cell_of(s.position)).collect();
    query(
        transaction,
        sql::MEETING_POSITIONS,
        &[&ids, &persons, &times, &lats, &lons, &cells],
    )
    .await?;
    Ok(())
}

/// A meeting from [`sql::MEETINGS_OF_PAIRS`]' columns, in the
/// transaction's error type.
fn kept_row(row: &Row) -> Result<Kept, tokio_postgres::Error> {
    let time = |index: usize| -> Result<Timestamp, tokio_postgres::Error> {
        row.try_get::<_, NaiveDateTime>(index)
            .map(Timestamp::from_naive)
    };
    Ok(Kept {
        id: row.try_get(0)?,
        meeting: Meeting {
            persons: (row.try_get(1)?, row.try_get(2)?),
            start: time(3)?,
            end: time(4)?,
            contacts: row.try_get(5)?,
            closest: Closest {
                metres: row.try_get(6)?,
                at: time(7)?,
                place: udaconnect_domain::Position {
                    lat: row.try_get(8)?,
                    lon: row.try_get(9)?,
                },
                locations: (row.try_get(10)?, row.try_get(11)?),
            },
        },
    })
}

/// A meeting read for an answer: its place checked like every position.
fn kept(row: &Row) -> Result<Kept, StoreError> {
    let what = "meeting";
    let mut meeting = kept_row(row).map_err(|err| StoreError::Corrupt(format!("{what}: {err}")))?;
    meeting.meeting.closest.place = lat_lon(row, 8, what)?;
    Ok(meeting)
}
