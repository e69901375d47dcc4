//! [`Store`] on PostGIS: each call is one statement (two for the
//! compatibility query: its rows, then their persons; two for keys another
//! edge claims at the same moment, see [`super::claims`]), prepared once
//! per connection; the writer's batches ([`super::batch`]), the meetings
//! ([`super::meetings`]) and erasure ([`super::erasure`]) have modules of
//! their own.

use std::{collections::HashMap, sync::Arc};

use futures::TryStreamExt;

use async_trait::async_trait;
use chrono::NaiveDateTime;
use tokio_postgres::{error::SqlState, types::ToSql};
use udaconnect_domain::{
    ClaimOutcome, Closest, CompatConnection, CompatQuery, ConnectionQuery, Contact, Credential,
    CredentialId, Digest, Erased, Erasures, InsertReport, KeyClaim, Location, LocationId,
    LocationRange, LocationRecord, NewCredential, NewPerson, Person, PersonId, PersonOrder,
    PersonSearch, Stats, Store, StoreError, Timestamp,
    meeting::{
        FeedCursor, Kept, MeetingChanges, MeetingFeed, MeetingQuery, MeetingRules, Sighting,
    },
    query::round_to_mm,
};

use super::{
    PgStore,
    rows::{self, database, get},
    sql,
};

/// Locations below this many are counted exactly; above, the statistics'
/// count (see [`sql::ESTIMATE_LOCATIONS`]) is close enough for a live
/// header, and costs nothing where counting would scan the table every
/// second.
const EXACT_COUNT_BELOW: i64 = 100_000;

fn limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl PgStore {
    /// `statement`'s rows, within the store's deadline.
    pub(super) async fn query(
        &self,
        what: &str,
        statement: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.bounded(what, async {
            let client = self.client().await?;
            let statement = client.prepare_cached(statement).await.map_err(database)?;
            client.query(&statement, params).await.map_err(database)
        })
        .await
    }

    /// A connection query's rows, each made into a `T` by `parse` as it
    /// arrives (no row is kept once parsed), under the query timeout if
    /// the store has one, which the server enforces (`SET LOCAL
    /// statement_timeout` in the statement's own transaction, so that the
    /// pooled connection keeps its usual timeout), answering
    /// [`StoreError::TimedOut`] when it cancels the statement.
    async fn timed_rows<T>(
        &self,
        what: &str,
        statement: &str,
        params: &[&(dyn ToSql + Sync)],
        parse: impl Fn(&tokio_postgres::Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let timeout = self.query_timeout;
        let cancelled = |err: tokio_postgres::Error| match (err.code(), timeout) {
            (Some(code), Some(timeout)) if *code == SqlState::QUERY_CANCELED => {
                StoreError::TimedOut(timeout)
            }
            _ => database(err),
        };
        let work = async {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(database)?;
            if let Some(timeout) = timeout {
                transaction
                    .batch_execute(&format!(
                        "SET LOCAL statement_timeout = {}",
                        timeout.as_millis().max(1)
                    ))
                    .await
                    .map_err(database)?;
            }
            let statement = transaction
                .prepare_cached(statement)
                .await
                .map_err(database)?;
            let rows = transaction
                .query_raw(&statement, params.iter().copied())
                .await
                .map_err(cancelled)?;
            futures::pin_mut!(rows);
            let mut parsed = Vec::new();
            while let Some(row) = rows.try_next().await.map_err(cancelled)? {
                parsed.push(parse(&row)?);
            }
            transaction.commit().await.map_err(database)?;
            Ok(parsed)
        };
        match timeout {
            // The server stops the statement; this only bounds the waits
            // around it (a connection, the round trips).
            Some(timeout) => tokio::time::timeout(self.wait + timeout + timeout, work)
                .await
                .unwrap_or(Err(StoreError::TimedOut(timeout))),
            None => self.bounded(what, work).await,
        }
    }

    /// The one number `statement` returns (-1 if no row).
    async fn count(&self, what: &str, statement: &str) -> Result<i64, StoreError> {
        match self.query(what, statement, &[]).await?.first() {
            Some(row) => get(row, 0, what),
            None => Ok(-1),
        }
    }
}

#[async_trait]
impl Store for PgStore {
    fn kind(&self) -> &'static str {
        "postgis"
    }

    async fn check(&self) -> Result<(), StoreError> {
        // With a replica, ready once it is loaded: its read is the
        // database answering, and, checked every second, it also keeps the
        // replica close behind, so a query's catch-up is short.
        if let Some(replica) = &self.replica {
            return replica.current(self).await.map(drop);
        }
        self.bounded("checking the database", async {
            let client = self.client().await?;
            client.simple_query("").await.map_err(database)?;
            Ok(())
        })
        .await
    }

    async fn persons(&self) -> Result<Vec<Person>, StoreError> {
        let rows = self.query("reading persons", sql::PERSONS, &[]).await?;
        rows.iter().map(rows::person).collect()
    }

    async fn search_persons(&self, search: &PersonSearch) -> Result<Vec<Person>, StoreError> {
        // The first page's cursor is one past every id of its order (ids
        // are int4, the cursor int8).
        let (statement, first) = match search.order {
            PersonOrder::Id => (sql::SEARCH_PERSONS, i64::from(i32::MIN) - 1),
            PersonOrder::Newest => (sql::SEARCH_PERSONS_NEWEST, i64::from(i32::MAX) + 1),
        };
        let after = search.after.map_or(first, i64::from);
        let rows = self
            .query(
                "searching persons",
                statement,
                &[&after, &search.text, &limit(search.limit)],
            )
            .await?;
        rows.iter().map(rows::person).collect()
    }

    async fn person(&self, id: PersonId) -> Result<Option<Person>, StoreError> {
        let rows = self.query("reading a person", sql::PERSON, &[&id]).await?;
        rows.first().map(rows::person).transpose()
    }

    async fn persons_by_id(
        &self,
        ids: &[PersonId],
    ) -> Result<HashMap<PersonId, Person>, StoreError> {
        let rows = self
            .query("reading persons", sql::PERSONS_BY_ID, &[&ids])
            .await?;
        rows.iter()
            .map(|row| rows::person(row).map(|person| (person.id, person)))
            .collect()
    }

    async fn person_ids_after(&self, after: PersonId) -> Result<Vec<PersonId>, StoreError> {
        let rows = self
            .query("reading person ids", sql::PERSON_IDS_AFTER, &[&after])
            .await?;
        rows.iter().map(|row| get(row, 0, "person id")).collect()
    }

    async fn create_person(&self, person: &NewPerson) -> Result<Person, StoreError> {
        let rows = self
            .query(
                "creating a person",
                sql::CREATE_PERSON,
                &[&person.first_name, &person.last_name, &person.company_name],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Unavailable("creating a person returned no id".into()))?;
        Ok(Person {
            id: get(row, 0, "new person")?,
            first_name: person.first_name.clone(),
            last_name: person.last_name.clone(),
            company_name: person.company_name.clone(),
        })
    }

    async fn location(&self, id: LocationId) -> Result<Option<Location>, StoreError> {
        let rows = self
            .query("reading a location", sql::LOCATION, &[&id])
            .await?;
        rows.first().map(|row| rows::location(row, 0)).transpose()
    }

    async fn insert_locations(&self, batch: &[LocationRecord]) -> Result<InsertReport, StoreError> {
        if batch.is_empty() {
            return Ok(InsertReport::default());
        }
        self.bounded("storing locations", self.store_batch(batch))
            .await
    }

    async fn reserve_location_ids(&self, count: usize) -> Result<Vec<LocationId>, StoreError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let rows = self
            .query(
                "reserving location ids",
                sql::RESERVE_LOCATION_IDS,
                &[&limit(count)],
            )
            .await?;
        rows.iter().map(|row| get(row, 0, "location id")).collect()
    }

    async fn claim_keys(&self, claims: &[KeyClaim]) -> Result<Vec<ClaimOutcome>, StoreError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        self.claim(claims).await
    }

    async fn locations_of(&self, range: &LocationRange) -> Result<Vec<Location>, StoreError> {
        let (above_time, above_id) = range.above();
        let rows = self
            .query(
                "reading locations",
                sql::LOCATIONS_OF,
                &[
                    &range.person_id,
                    &range.start.to_naive(),
                    &range.end.to_naive(),
                    &above_time.to_naive(),
                    &above_id,
                    &limit(range.limit),
                ],
            )
            .await?;
        rows.iter().map(|row| rows::location(row, 0)).collect()
    }

    async fn compat_connections(
        &self,
        query: &CompatQuery,
    ) -> Result<Vec<CompatConnection>, StoreError> {
        if let Some(replica) = &self.replica {
            return replica.current(self).await?.compat_connections(query).await;
        }
        let (start, own_end) = query.own_window();
        let (_, others_end) = query.others_window();
        let locations = self
            .timed_rows(
                "finding connections",
                sql::COMPAT_CONNECTIONS,
                &[
                    &query.person_id,
                    &start.to_naive(),
                    &own_end.to_naive(),
                    &query.distance.metres(),
                    &others_end.to_naive(),
                    &limit(query.limit),
                ],
                rows::found_location,
            )
            .await?;
        let mut ids: Vec<PersonId> = locations.iter().map(|l| l.person_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let persons: HashMap<PersonId, Arc<Person>> = self
            .persons_by_id(&ids)
            .await?
            .into_iter()
            .map(|(id, person)| (id, Arc::new(person)))
            .collect();
        locations
            .into_iter()
            .map(|location| {
                let person = persons.get(&location.person_id).cloned().ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "location {} names person {}, who does not exist",
                        location.id, location.person_id
                    ))
                })?;
                Ok(CompatConnection { person, location })
            })
            .collect()
    }

    async fn connections(&self, query: &ConnectionQuery) -> Result<Vec<Contact>, StoreError> {
        if let Some(replica) = &self.replica {
            return replica.current(self).await?.connections(query).await;
        }
        let (statement, params) = connections_statement(query);
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|param| &**param as _).collect();
        self.timed_rows("finding contacts", statement, &params, contact)
            .await
    }

    async fn stats(&self) -> Result<Stats, StoreError> {
        let persons = self.count("counting persons", sql::COUNT_PERSONS).await?;
        let estimate = self
            .count("estimating locations", sql::ESTIMATE_LOCATIONS)
            .await?;
        let locations = if estimate < EXACT_COUNT_BELOW {
            self.count("counting locations", sql::COUNT_LOCATIONS)
                .await?
        } else {
            estimate
        };
        Ok(Stats {
            persons: u64::try_from(persons).unwrap_or_default(),
            locations: u64::try_from(locations).unwrap_or_default(),
        })
    }

    async fn apply_meetings(
        &self,
        rules: &MeetingRules,
        sightings: &[Sighting],
    ) -> Result<MeetingChanges, StoreError> {
        self.fold_meetings(rules, sightings).await
    }

    async fn meetings(&self, query: &MeetingQuery) -> Result<Vec<Kept>, StoreError> {
        self.meetings_of(query).await
    }

    async fn meeting_feed(
        &self,
        since: Option<&FeedCursor>,
        person: Option<PersonId>,
        limit: usize,
    ) -> Result<MeetingFeed, StoreError> {
        self.feed(since, person, limit).await
    }

    async fn event_cursor(&self, publisher: &str) -> Result<Option<FeedCursor>, StoreError> {
        self.read_event_cursor(publisher).await
    }

    async fn save_event_cursor(
        &self,
        publisher: &str,
        cursor: &FeedCursor,
    ) -> Result<(), StoreError> {
        self.write_event_cursor(publisher, cursor).await
    }

    async fn create_credential(
        &self,
        credential: &NewCredential,
    ) -> Result<Credential, StoreError> {
        self.insert_credential(credential).await
    }

    async fn credential_by_digest(
        &self,
        digest: &Digest,
    ) -> Result<Option<Credential>, StoreError> {
        self.find_credential(digest).await
    }

    async fn credential(&self, id: CredentialId) -> Result<Option<Credential>, StoreError> {
        self.read_credential(id).await
    }

    async fn credentials_of(&self, person: PersonId) -> Result<Vec<Credential>, StoreError> {
        self.person_credentials(person).await
    }

    async fn revoke_credential(&self, id: CredentialId) -> Result<Option<Credential>, StoreError> {
        self.revoke(id).await
    }

    async fn erase_person(&self, id: PersonId) -> Result<Option<Erased>, StoreError> {
        self.erase(id).await
    }

    async fn erasures(&self, since: Option<&FeedCursor>) -> Result<Erasures, StoreError> {
        self.erased_since(since).await
    }
}

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// The v2 statement for `query`, and its parameters.
fn connections_statement(query: &ConnectionQuery) -> (&'static str, Params) {
    let (start, end) = query.own_window();
    let after_encounters = query
        .after
        .map(|after| i64::try_from(after.encounters).unwrap_or(i64::MAX));
    let after_person = query.after.map(|after| after.person_id);
    let mut params: Params = vec![
        Box::new(query.person_id),
        Box::new(start.to_naive()),
        Box::new(end.to_naive()),
        Box::new(query.distance.metres()),
    ];
    let statement = match query.within {
        Some(within) => {
            params.push(Box::new(within.micros()));
            sql::CONNECTIONS_WITHIN
        }
        None => {
            let (lo, hi) = query.others_span(query.start);
            params.push(Box::new(lo.to_naive()));
            params.push(Box::new(hi.to_naive()));
            sql::CONNECTIONS
        }
    };
    params.push(Box::new(after_encounters));
    params.push(Box::new(after_person));
    params.push(Box::new(limit(query.limit)));
    (statement, params)
}

impl PgStore {
    /// The plan of the v2 query for `query`: `EXPLAIN`, or with `analyze`
    /// `EXPLAIN (ANALYZE, BUFFERS)` (which runs it), as text.
    pub async fn explain_connections(
        &self,
        query: &ConnectionQuery,
        analyze: bool,
    ) -> Result<String, StoreError> {
        let (statement, params) = connections_statement(query);
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|param| &**param as _).collect();
        let explain = if analyze {
            "EXPLAIN (ANALYZE, BUFFERS) "
        } else {
            "EXPLAIN "
        };
        let rows = self
            .query(
                "explaining contacts",
                &format!("{explain}{statement}"),
                &params,
            )
            .await?;
        plan(&rows)
    }

    /// The plan of the original's endpoint's query for `query`, as
    /// [`Self::explain_connections`] gives v2's.
    pub async fn explain_compat_connections(
        &self,
        query: &CompatQuery,
        analyze: bool,
    ) -> Result<String, StoreError> {
        let (start, own_end) = query.own_window();
        let (_, others_end) = query.others_window();
        let explain = if analyze {
            "EXPLAIN (ANALYZE, BUFFERS) "
        } else {
            "EXPLAIN "
        };
        let rows = self
            .query(
                "explaining connections",
                &format!("{explain}{}", sql::COMPAT_CONNECTIONS),
                &[
                    &query.person_id,
                    &start.to_naive(),
                    &own_end.to_naive(),
                    &query.distance.metres(),
                    &others_end.to_naive(),
                    &limit(query.limit),
                ],
            )
            .await?;
        plan(&rows)
    }
}

/// The text of an `EXPLAIN`'s rows.
fn plan(rows: &[tokio_postgres::Row]) -> Result<String, StoreError> {
    let lines = rows
        .iter()
        .map(|row| get::<String>(row, 0, "plan"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(lines.join("\n"))
}

/// A contact from a row of [`sql::CONNECTIONS`].
fn contact(row: &tokio_postgres::Row) -> Result<Contact, StoreError> {
    let person_id: PersonId = get(row, 0, "contact")?;
    let what = format!("contact {person_id}");
    let encounters: i64 = get(row, 1, &what)?;
    let first_met: NaiveDateTime = get(row, 2, &what)?;
    let last_met: NaiveDateTime = get(row, 3, &what)?;
    let location_id: LocationId = get(row, 4, &what)?;
    let time: NaiveDateTime = get(row, 5, &what)?;
    let metres: f64 = get(row, 6, &what)?;
    if !metres.is_finite() {
        return Err(StoreError::Corrupt(format!(
            "{what}: location {location_id} is {metres} m away"
        )));
    }
    Ok(Contact {
        person: Person {
            id: person_id,
            first_name: get(row, 8, &what)?,
            last_name: get(row, 9, &what)?,
            company_name: get(row, 10, &what)?,
        },
        encounters: u64::try_from(encounters).unwrap_or_default(),
        first_met: Timestamp::from_naive(first_met),
        last_met: Timestamp::from_naive(last_met),
        closest: Closest {
            distance_m: round_to_mm(metres),
            location_id,
            position: rows::position(row, 7, &format!("{what}: location {location_id}"))?,
            time: Timestamp::from_naive(time),
        },
    })
}
