//! What the store tests share: a migrated database on a fresh server, the
//! original's fixtures, and clustered random data.

use chrono::NaiveDate;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use testkit::PostgresServer;
use udaconnect_domain::{
    Location, LocationRecord, NewLocation, Person, Position, Store, Timestamp, conference::Dataset,
    geodesic, time::MICROS_PER_DAY,
};
use udaconnect_store::{PgConfig, PgStore};

/// A server, and a store on one of its databases.
pub struct Db {
    pub server: PostgresServer,
    pub url: String,
    pub store: PgStore,
}

/// A fresh server with a migrated database `udaconnect`.
pub async fn migrated() -> Db {
    let server = PostgresServer::start();
    let url = server.create_database("udaconnect");
    let store = store(&url);
    store.migrate().await.expect("migrate a fresh database");
    Db { server, url, store }
}

pub fn store(url: &str) -> PgStore {
    PgStore::new(&PgConfig::new(url)).expect("a store")
}

/// A store on `url` answering the connection queries from its replica.
pub fn replica_store(url: &str) -> PgStore {
    PgStore::new(&PgConfig {
        replica: true,
        ..PgConfig::new(url)
    })
    .expect("a store with a replica")
}

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a date")
}

/// A plain tokio-postgres client on `url`.
pub async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

/// Stores one location the way production does (an id reserved, then
/// the batch insert the writer makes) and reads it back.
pub async fn store_location(store: &impl Store, location: NewLocation) -> Location {
    let ids = store.reserve_location_ids(1).await.expect("an id");
    let id = *ids.first().expect("one id");
    let report = store
        .insert_locations(&[LocationRecord {
            id,
            person_id: location.person_id,
            position: location.position,
            time: location.time,
            key: None,
        }])
        .await
        .expect("stored");
    assert_eq!(report.inserted, 1, "{report:?}");
    store.location(id).await.expect("read").expect("the row")
}

/// 2020-06-01T00:00:00Z.
pub fn june() -> Timestamp {
    Timestamp::start_of(date(2020, 6, 1))
}

/// Random data clustered so that many pairs are close: `persons` persons,
/// `locations` locations in five 20 m discs (two of them overlapping, one
/// across the antimeridian, one at 84° N, where the PostGIS store searches
/// its GiST instead of its grid), over three days from June 1st on whole
/// minutes, a fifth of them at a position (and time) used before, so that
/// exact ties happen.
pub fn clustered(seed: u64, persons: usize, locations: usize) -> Dataset {
    let mut rng = StdRng::seed_from_u64(seed);
    let venues = [
        Position {
            lat: 37.5534,
            lon: -122.2905,
        },
        Position {
            lat: 37.5540,
            lon: -122.2890,
        },
        Position {
            lat: 35.0585,
            lon: -106.5720,
        },
        Position {
            lat: -16.7,
            lon: 179.9999,
        },
        Position {
            lat: 84.0,
            lon: 10.0,
        },
    ];
    let persons: Vec<Person> = (1..=persons)
        .map(|n| Person {
            id: i32::try_from(n).expect("few persons"),
            first_name: format!("First{n}"),
            last_name: format!("Last{}", n % 7),
            company_name: format!("Company {}", n % 3),
        })
        .collect();
    let mut records: Vec<LocationRecord> = Vec::with_capacity(locations);
    for n in 0..locations {
        let person_id = persons[rng.random_range(0..persons.len())].id;
        let (position, time) = if n > 10 && rng.random_range(0..5) == 0 {
            let earlier = &records[rng.random_range(0..records.len())];
            (earlier.position, earlier.time)
        } else {
            let venue = venues[rng.random_range(0..venues.len())];
            let r = 20.0 * rng.random::<f64>().sqrt();
            let angle = rng.random::<f64>() * std::f64::consts::TAU;
            let position = Position {
                lat: venue.lat + r * angle.cos() / 110_950.0,
                lon: wrap_lon(venue.lon + r * angle.sin() / 88_000.0),
            };
            let minutes = rng.random_range(0..3 * 24 * 60);
            (position, june().plus_micros(minutes * 60_000_000))
        };
        records.push(LocationRecord {
            id: i64::try_from(n).expect("few locations") + 1,
            person_id,
            position,
            time,
            key: None,
        });
    }
    Dataset {
        persons,
        locations: away_from_thresholds(records),
    }
}

/// `lon` (or a difference of longitudes) folded into −180..180.
fn wrap_lon(lon: f64) -> f64 {
    (lon + 540.0).rem_euclid(360.0) - 180.0
}

/// The distances the tests ask about.
pub const THRESHOLDS: [f64; 3] = [2.0, 5.0, 12.0];

/// `records` less one location of every pair within a millimetre of a
/// threshold, where the two stores might decide a hair apart.
fn away_from_thresholds(mut records: Vec<LocationRecord>) -> Vec<LocationRecord> {
    let mut by_lat: Vec<usize> = (0..records.len()).collect();
    by_lat.sort_by(|a, b| {
        records[*a]
            .position
            .lat
            .total_cmp(&records[*b].position.lat)
    });
    let mut dropped = vec![false; records.len()];
    let band = 13.0 / 110_000.0;
    for (n, &i) in by_lat.iter().enumerate() {
        for &j in &by_lat[n + 1..] {
            let (a, b) = (records[i].position, records[j].position);
            if b.lat - a.lat > band {
                break;
            }
            if dropped[i] || dropped[j] {
                continue;
            }
            let rough = ((b.lat - a.lat) * 110_950.0)
                .hypot(wrap_lon(b.lon - a.lon) * 111_320.0 * a.lat.to_radians().cos());
            if THRESHOLDS.iter().all(|t| (rough - t).abs() > 0.05 * t) {
                continue;
            }
            let exact = geodesic::distance(b, a);
            if THRESHOLDS.iter().any(|t| (exact - t).abs() <= 0.001) {
                dropped[j] = true;
            }
        }
    }
    let mut n = 0;
    records.retain(|_| {
        n += 1;
        !dropped[n - 1]
    });
    records
}

/// The end of the clustered data's days.
pub fn clustered_end() -> Timestamp {
    june().plus_micros(3 * MICROS_PER_DAY)
}
