//! Meetings: whom a person met, when, where and for how long.
//!
//! Two persons' locations are a *contact* when they are at most
//! `distance` metres apart (on the ellipsoid, as every other question
//! measures) and at most `within` apart in time; a contact spans the two
//! times. A *meeting* of two persons is a maximal chain of their contacts
//! in which each next contact starts at most `gap` after the chain so far
//! ends: the periods they were together, short losses of signal bridged.
//!
//! A meeting depends only on the set of locations, never on the order
//! they arrive in: [`reference`] computes every meeting in one pass over
//! all of them (slow and plain, the definition made code), and
//! [`Sweep`] folds new contacts into the meetings already known, which is
//! how meetings are kept as locations stream in. Folding is associative
//! and commutative (minimum, maximum, sum), so the stream's meetings equal
//! the reference's as long as each contact is folded exactly once; the
//! stores see to that by remembering which locations they have applied.

use std::{
    cmp::Ordering,
    collections::{BTreeMap, HashMap},
};

use serde::Serialize;

use crate::{
    geodesic::{self, GeoBox},
    model::{Invalid, LocationId, PersonId, Position, Problem},
    query::{Distance, MAX_WITHIN_MICROS},
    time::Timestamp,
};

/// The default radius: the original's 5 m.
pub const DEFAULT_DISTANCE_M: f64 = 5.0;
/// The default `within` and `gap`: two minutes, for phones reporting
/// every few seconds (a phone in a pocket may skip a minute).
pub const DEFAULT_WINDOW_MICROS: i64 = 2 * 60 * 1_000_000;
/// The largest `distance` the meeting rules accept, metres. Meetings are
/// kept as locations arrive, and every location is matched against the
/// others within this radius, so it stays at conversation scale.
pub const MAX_MEETING_DISTANCE_M: f64 = 100.0;
/// The longest `gap` accepted.
pub const MAX_GAP_MICROS: i64 = MAX_WITHIN_MICROS;

/// What makes two persons' locations a meeting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeetingRules {
    distance: f64,
    within: i64,
    gap: i64,
}

impl Default for MeetingRules {
    fn default() -> Self {
        Self {
            distance: DEFAULT_DISTANCE_M,
            within: DEFAULT_WINDOW_MICROS,
            gap: DEFAULT_WINDOW_MICROS,
        }
    }
}

impl MeetingRules {
    /// Checks each value: `distance` 0 ..= [`MAX_MEETING_DISTANCE_M`]
    /// metres, `within` and `gap` 0 ..= 7 days (in microseconds).
    pub fn new(distance: f64, within_micros: i64, gap_micros: i64) -> Result<Self, Invalid> {
        let distance = Distance::new("distance", distance)?.metres();
        if distance > MAX_MEETING_DISTANCE_M {
            return Err(Invalid::new(
                "distance",
                Problem::OutOfRange,
                format!(
                    "must be at most {MAX_MEETING_DISTANCE_M} metres for meetings, got {distance}"
                ),
            ));
        }
        for (field, micros) in [("within", within_micros), ("gap", gap_micros)] {
            if !(0..=MAX_GAP_MICROS).contains(&micros) {
                return Err(Invalid::new(
                    field,
                    Problem::OutOfRange,
                    "must be a duration from 0 to 7 days, such as 2m",
                ));
            }
        }
        Ok(Self {
            distance,
            within: within_micros,
            gap: gap_micros,
        })
    }

    /// Metres.
    pub fn distance(&self) -> f64 {
        self.distance
    }

    /// Microseconds.
    pub fn within_micros(&self) -> i64 {
        self.within
    }

    /// Microseconds.
    pub fn gap_micros(&self) -> i64 {
        self.gap
    }

    /// How far in time from a location another one can still touch the
    /// meetings it is part of: a contact reaches `within` from it, and a
    /// meeting `gap` further.
    pub fn reach_micros(&self) -> i64 {
        self.within.saturating_add(self.gap)
    }

    /// The contact of two locations, if they are one: different persons,
    /// close enough in space and time.
    pub fn contact(&self, x: &Sighting, y: &Sighting) -> Option<Meeting> {
        self.contact_in(x, &geodesic::search_boxes(x.position, self.distance), y)
    }

    /// [`Self::contact`], given the search boxes of `x` (the same for every
    /// location it is measured against).
    fn contact_in(&self, x: &Sighting, boxes: &[GeoBox], y: &Sighting) -> Option<Meeting> {
        if x.person == y.person || x.id == y.id {
            return None;
        }
        if x.at.micros().abs_diff(y.at.micros()) > self.within.unsigned_abs() {
            return None;
        }
        // The boxes that surely hold every position within the distance
        // cost a few multiplications; the exact distance a microsecond.
        if !boxes.iter().any(|b| b.contains(y.position)) {
            return None;
        }
        let metres = geodesic::distance(x.position, y.position);
        // A NaN is never close.
        if metres.is_nan() || metres > self.distance {
            return None;
        }
        let (first, second) = if x.person < y.person { (x, y) } else { (y, x) };
        let (start, end) = if x.at <= y.at {
            (x.at, y.at)
        } else {
            (y.at, x.at)
        };
        Some(Meeting {
            persons: (first.person, second.person),
            start,
            end,
            contacts: 1,
            closest: Closest {
                metres,
                at: end,
                place: Position {
                    lat: (first.position.lat + second.position.lat) / 2.0,
                    lon: (first.position.lon + second.position.lon) / 2.0,
                },
                locations: (first.id, second.id),
            },
        })
    }
}

/// A stored location as meetings see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sighting {
    /// The location's id.
    pub id: LocationId,
    /// Whose phone.
    pub person: PersonId,
    /// When.
    pub at: Timestamp,
    /// Where.
    pub position: Position,
}

/// Where and when two persons were closest during a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Closest {
    /// The distance, metres.
    pub metres: f64,
    /// The later of the two locations' times.
    pub at: Timestamp,
    /// Halfway between the two locations.
    pub place: Position,
    /// The two locations: the first person's, then the second's.
    pub locations: (LocationId, LocationId),
}

impl Closest {
    /// A total order: nearer first, then earlier, then by the locations'
    /// ids, so that every store picks the same one among equals.
    fn rank(&self, other: &Self) -> Ordering {
        self.metres
            .total_cmp(&other.metres)
            .then(self.at.cmp(&other.at))
            .then(self.locations.cmp(&other.locations))
    }
}

/// A period two persons spent together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Meeting {
    /// The two persons, the lower id first.
    pub persons: (PersonId, PersonId),
    /// The first contact's earlier time.
    pub start: Timestamp,
    /// The last contact's later time.
    pub end: Timestamp,
    /// How many pairs of locations were contacts.
    pub contacts: i64,
    /// The closest contact.
    pub closest: Closest,
}

impl Meeting {
    /// How long, in microseconds.
    pub fn duration_micros(&self) -> i64 {
        self.end.micros() - self.start.micros()
    }

    /// Whether `other` (of the same two persons) belongs to the same
    /// meeting: it starts at most `gap` after this one ends, or the other
    /// way round.
    pub fn touches(&self, other: &Self, gap: i64) -> bool {
        other.start.micros() <= self.end.micros().saturating_add(gap)
            && self.start.micros() <= other.end.micros().saturating_add(gap)
    }

    /// Takes `other` (of the same two persons) into this meeting.
    pub fn absorb(&mut self, other: &Self) {
        self.start = self.start.min(other.start);
        self.end = self.end.max(other.end);
        self.contacts += other.contacts;
        if other.closest.rank(&self.closest) == Ordering::Less {
            self.closest = other.closest;
        }
    }
}

/// Every meeting among `sightings`, by the definition: every pair
/// measured, each pair of persons' contacts chained in time order. Slow
/// (quadratic), for checking the stores against. Sorted by persons, then
/// start.
pub fn reference(rules: &MeetingRules, sightings: &[Sighting]) -> Vec<Meeting> {
    let mut unique: Vec<Sighting> = sightings.to_vec();
    unique.sort_by_key(|s| s.id);
    unique.dedup_by_key(|s| s.id);
    let mut contacts: BTreeMap<(PersonId, PersonId), Vec<Meeting>> = BTreeMap::new();
    for (i, x) in unique.iter().enumerate() {
        for y in &unique[i + 1..] {
            if let Some(contact) = rules.contact(x, y) {
                contacts.entry(contact.persons).or_default().push(contact);
            }
        }
    }
    let mut meetings = Vec::new();
    for (_, mut pair) in contacts {
        pair.sort_by_key(|c| (c.start, c.end));
        let mut current: Option<Meeting> = None;
        for contact in pair {
            match current.as_mut() {
                Some(meeting)
                    if contact.start.micros() <= meeting.end.micros().saturating_add(rules.gap) =>
                {
                    meeting.absorb(&contact);
                }
                _ => meetings.extend(current.replace(contact)),
            }
        }
        meetings.extend(current);
    }
    meetings
}

/// Contacts of one pair held before they are chained together.
const PAIR_COMPACT_AT: usize = 16;

/// The contacts that `new` locations add to `applied` ones, by pair of
/// persons: each new location against the applied ones and the new ones
/// before it, so each pair of locations is counted once. The caller leaves
/// out of `new` whatever was applied already; `applied` may hold more than
/// the locations that can match (a store fetches by area and time). Only
/// locations in the cells near each new one and within `within` of it are
/// measured, and each pair's contacts are chained into partial meetings as
/// they accumulate ([`Sweep::fold`] with nothing kept): what a store folds
/// into its meetings then, which is the same as folding the contacts one
/// by one, since chaining is associative. Memory: the locations given, and
/// a few hundred contacts per pair at most besides the partial meetings.
pub fn contacts_by_pair(
    rules: &MeetingRules,
    new: &[Sighting],
    applied: &[Sighting],
) -> BTreeMap<(PersonId, PersonId), Vec<Meeting>> {
    // Applied locations, then new ones, by cell, each cell in time order;
    // a new location meets the applied ones and the new ones before it.
    let mut grid: HashMap<i64, Vec<(Timestamp, usize)>> = HashMap::new();
    let all: Vec<&Sighting> = applied.iter().chain(new).collect();
    for (index, sighting) in all.iter().enumerate() {
        grid.entry(cell_of(sighting.position))
            .or_default()
            .push((sighting.at, index));
    }
    for entries in grid.values_mut() {
        entries.sort_unstable();
    }
    let within = rules.within_micros();
    // Each pair's contacts, chained again once they have doubled since.
    let mut pairs: BTreeMap<(PersonId, PersonId), (Vec<Meeting>, usize)> = BTreeMap::new();
    for (offset, x) in new.iter().enumerate() {
        let me = applied.len() + offset;
        let low = Timestamp::from_micros(x.at.micros().saturating_sub(within));
        let high = Timestamp::from_micros(x.at.micros().saturating_add(within));
        let boxes = geodesic::search_boxes(x.position, rules.distance());
        for cell in cells_near(x.position, rules.distance()) {
            let Some(entries) = grid.get(&cell) else {
                continue;
            };
            let from = entries.partition_point(|(at, _)| *at < low);
            for &(at, index) in &entries[from..] {
                if at > high {
                    break;
                }
                if index >= applied.len() && index >= me {
                    continue;
                }
                if let Some(contact) = rules.contact_in(x, &boxes, all[index]) {
                    let (held, chain_at) = pairs
                        .entry(contact.persons)
                        .or_insert_with(|| (Vec::new(), PAIR_COMPACT_AT));
                    held.push(contact);
                    if held.len() >= *chain_at {
                        *held = Sweep::fold(rules, &[], held).started;
                        *chain_at = PAIR_COMPACT_AT.max(2 * held.len());
                    }
                }
            }
        }
    }
    pairs
        .into_iter()
        .map(|(pair, (held, _))| (pair, Sweep::fold(rules, &[], &held).started))
        .collect()
}

/// A meeting as a store keeps it, under an id of the store's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kept {
    /// The store's id.
    pub id: i64,
    /// The meeting.
    pub meeting: Meeting,
}

/// What folding contacts into one pair's meetings changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fold {
    /// Meetings that grew: kept under their id (the lowest of those they
    /// joined), with their new extent.
    pub grown: Vec<Kept>,
    /// Ids of meetings joined into another one.
    pub joined: Vec<i64>,
    /// Meetings that did not exist before.
    pub started: Vec<Meeting>,
}

/// Folds contacts of one pair of persons into that pair's meetings.
pub struct Sweep;

impl Sweep {
    /// The range of time in which kept meetings may join `contacts`: a
    /// store loads the pair's meetings that overlap it. `None` without
    /// contacts.
    pub fn span(rules: &MeetingRules, contacts: &[Meeting]) -> Option<(Timestamp, Timestamp)> {
        let start = contacts.iter().map(|c| c.start).min()?;
        let end = contacts.iter().map(|c| c.end).max()?;
        Some((
            Timestamp::from_micros(start.micros().saturating_sub(rules.gap)),
            Timestamp::from_micros(end.micros().saturating_add(rules.gap)),
        ))
    }

    /// Folds `contacts` (all of one pair) into `kept` (that pair's
    /// meetings overlapping [`Sweep::span`]; more do no harm). In time
    /// order, each item joins the meeting before it when it starts at
    /// most `gap` after that one ends: kept meetings never touch one
    /// another, so only contacts join them.
    pub fn fold(rules: &MeetingRules, kept: &[Kept], contacts: &[Meeting]) -> Fold {
        let mut items: Vec<(Meeting, Option<i64>)> = kept
            .iter()
            .map(|k| (k.meeting, Some(k.id)))
            .chain(contacts.iter().map(|c| (*c, None)))
            .collect();
        items.sort_by_key(|(m, id)| (m.start, m.end, *id));
        let mut fold = Fold::default();
        let mut group: Option<Group> = None;
        for (meeting, id) in items {
            match group.as_mut() {
                Some(g)
                    if meeting.start.micros()
                        <= g.meeting.end.micros().saturating_add(rules.gap) =>
                {
                    g.add(&meeting, id);
                }
                _ => {
                    if let Some(done) = group.take() {
                        done.finish(&mut fold);
                    }
                    group = Some(Group::new(meeting, id));
                }
            }
        }
        if let Some(done) = group {
            done.finish(&mut fold);
        }
        fold
    }
}

/// Meetings and contacts chained together during a fold.
struct Group {
    meeting: Meeting,
    ids: Vec<i64>,
    changed: bool,
}

impl Group {
    fn new(meeting: Meeting, id: Option<i64>) -> Self {
        Self {
            meeting,
            ids: id.into_iter().collect(),
            changed: id.is_none(),
        }
    }

    fn add(&mut self, meeting: &Meeting, id: Option<i64>) {
        self.meeting.absorb(meeting);
        match id {
            Some(id) => self.ids.push(id),
            None => self.changed = true,
        }
    }

    fn finish(mut self, fold: &mut Fold) {
        if !self.changed {
            return;
        }
        self.ids.sort_unstable();
        match self.ids.split_first() {
            Some((&id, rest)) => {
                fold.grown.push(Kept {
                    id,
                    meeting: self.meeting,
                });
                fold.joined.extend_from_slice(rest);
            }
            None => fold.started.push(self.meeting),
        }
    }
}

/// The side of a cell of the grid meetings look locations up in, degrees
/// (about 11 m of latitude): a 5 m search covers a few cells.
pub const CELL_DEG: f64 = 0.0001;
/// Columns in a row of the grid (360° of longitude, and one more).
const CELL_COLUMNS: i64 = 3_600_001;

/// The cell `position` lies in.
pub fn cell_of(position: Position) -> i64 {
    let row = ((position.lat + 90.0) / CELL_DEG).floor() as i64;
    let column = ((position.lon + 180.0) / CELL_DEG).floor() as i64;
    row * CELL_COLUMNS + column
}

/// Every cell holding a position within `metres` of `center`.
pub fn cells_near(center: Position, metres: f64) -> Vec<i64> {
    let mut cells = Vec::new();
    for b in geodesic::search_boxes(center, metres) {
        let corner = |lat: f64, lon: f64| {
            (
                ((lat + 90.0) / CELL_DEG).floor() as i64,
                ((lon + 180.0) / CELL_DEG).floor() as i64,
            )
        };
        let (low_row, low_column) = corner(b.min_lat, b.min_lon);
        let (high_row, high_column) = corner(b.max_lat, b.max_lon);
        for row in low_row..=high_row {
            for column in low_column..=high_column {
                cells.push(row * CELL_COLUMNS + column);
            }
        }
    }
    cells.sort_unstable();
    cells.dedup();
    cells
}

/// Where a reader of a store's changes (the meetings written, the persons
/// erased) stands: a snapshot of which writes it has seen, as PostgreSQL
/// writes one (`xmin:xmax:xip,…`, the transactions below `xmax` seen but
/// for those listed in progress). The embedded store writes `0:n:`, its
/// n-th change (of the meetings, or of the erasures: each reader keeps
/// its own). Opaque to clients; read back strictly, since a client sends
/// it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedCursor(String);

/// The most transactions a cursor may list as in progress.
pub const MAX_CURSOR_IN_PROGRESS: usize = 1000;

impl FeedCursor {
    /// Reads a cursor, `None` unless it is one a store could have written.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(':');
        let (xmin, xmax, list) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let number = |digits: &str| -> Option<u64> {
            (!digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse().ok())
                .flatten()
        };
        let (xmin, xmax) = (number(xmin)?, number(xmax)?);
        if xmin > xmax {
            return None;
        }
        if !list.is_empty() {
            let listed: Vec<&str> = list.split(',').collect();
            if listed.len() > MAX_CURSOR_IN_PROGRESS {
                return None;
            }
            let mut previous = None;
            for xip in listed {
                let xip = number(xip)?;
                if xip < xmin || xip >= xmax || previous.is_some_and(|p| xip <= p) {
                    return None;
                }
                previous = Some(xip);
            }
        }
        Some(Self(text.to_owned()))
    }

    /// The embedded store's cursor after its `count`-th change.
    pub fn counted(count: u64) -> Self {
        Self(format!("0:{count}:"))
    }

    /// The count of an embedded store's cursor (`xmax`).
    pub fn count(&self) -> u64 {
        self.0
            .split(':')
            .nth(1)
            .and_then(|xmax| xmax.parse().ok())
            .unwrap_or(0)
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The meetings written since a cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct MeetingFeed {
    /// Where the next read starts.
    pub cursor: FeedCursor,
    /// The meetings written since (each as it is now), oldest write first
    /// as far as the store knows.
    pub meetings: Vec<Kept>,
    /// `false` when more were written than the read's limit: the reader
    /// missed some, and should read the meetings again in full.
    pub complete: bool,
}

/// What folding a batch of locations into the meetings did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeetingChanges {
    /// Locations folded in now.
    pub applied: usize,
    /// Locations folded in before (a redelivery), left alone.
    pub already: usize,
    /// Locations of persons who no longer exist (erased since the
    /// locations were stored): passed over, nothing of them kept.
    pub erased: usize,
    /// Meetings that began, under their new ids.
    pub started: Vec<Kept>,
    /// Meetings that grew (or took others in), as they are now.
    pub grown: Vec<Kept>,
    /// Meetings taken into another one, gone.
    pub joined: Vec<i64>,
    /// Times the store started the fold again because another one folding
    /// nearby locations at once conflicted with it (serializable).
    pub serialization_retries: usize,
}

/// The most meetings one page may hold.
pub const MAX_MEETINGS_PAGE: usize = 1000;

/// Where a page of a person's meetings continues: after the meeting that
/// started at `start` with id `id` (most recent first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeetingCursor {
    /// The last meeting's start.
    pub start: Timestamp,
    /// The last meeting's id.
    pub id: i64,
}

/// A page of one person's meetings that overlap `[start, end)`, most
/// recent (by start, then id) first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeetingQuery {
    /// Whose.
    pub person: PersonId,
    /// Meetings ending at or after this.
    pub start: Timestamp,
    /// Meetings starting before this.
    pub end: Timestamp,
    /// Continue after this one.
    pub after: Option<MeetingCursor>,
    /// At most this many, 1 ..= [`MAX_MEETINGS_PAGE`].
    pub limit: usize,
}

impl MeetingQuery {
    /// Whether `kept` is on this query's pages at all.
    pub fn matches(&self, kept: &Kept) -> bool {
        let m = &kept.meeting;
        (m.persons.0 == self.person || m.persons.1 == self.person)
            && m.end >= self.start
            && m.start < self.end
    }

    /// Whether `kept` comes after the cursor.
    pub fn is_after_cursor(&self, kept: &Kept) -> bool {
        self.after
            .is_none_or(|cursor| (kept.meeting.start, kept.id) < (cursor.start, cursor.id))
    }

    /// The end of the range and the cursor as one bound: a meeting on
    /// this page has its (start, id) below it. Meeting ids are positive,
    /// so `(end, i64::MIN)` is "starts before the end".
    pub fn below(&self) -> (Timestamp, i64) {
        let end = (self.end, i64::MIN);
        match self.after {
            Some(cursor) if (cursor.start, cursor.id) < end => (cursor.start, cursor.id),
            _ => end,
        }
    }
}

pub mod shard;
pub mod time_ordered;

#[cfg(test)]
mod tests;
