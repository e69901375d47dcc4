//! Rows into records, checked: a row that does not make a valid record
//! (a NaN someone wrote into `coordinate` by hand, say) is
//! [`StoreError::Corrupt`] naming the row, never a panic; and database
//! errors into [`StoreError`].

use chrono::NaiveDateTime;
use tokio_postgres::{Row, types::FromSql};
use udaconnect_domain::{
    Coordinate, Location, LocationId, Person, PersonId, Position, StoreError, Timestamp,
};

use super::wkb::Wkb;

/// Column `index` of `row`, or `Corrupt` naming `what`.
pub fn get<'a, T: FromSql<'a>>(row: &'a Row, index: usize, what: &str) -> Result<T, StoreError> {
    row.try_get(index).map_err(|err| {
        let cause = std::error::Error::source(&err)
            .map(|cause| format!(": {cause}"))
            .unwrap_or_default();
        StoreError::Corrupt(format!("{what}: column {index}: {err}{cause}"))
    })
}

/// A person from `id, first_name, last_name, company_name`.
pub fn person(row: &Row) -> Result<Person, StoreError> {
    let what = "person";
    Ok(Person {
        id: get(row, 0, what)?,
        first_name: get(row, 1, what)?,
        last_name: get(row, 2, what)?,
        company_name: get(row, 3, what)?,
    })
}

/// A location from the columns of `sql::location_columns!` starting at
/// `first`.
pub fn location(row: &Row, first: usize) -> Result<Location, StoreError> {
    read_location(row, first, 1, position)
}

/// A location from `id, person_id, coordinate, lat, lon, creation_time`:
/// the columns the grid's index holds (`lat` and `lon` are `point`'s).
pub fn found_location(row: &Row) -> Result<Location, StoreError> {
    read_location(row, 0, 2, lat_lon)
}

/// Id, person and coordinate from column `first` on, then the position
/// from the `width` columns `read` takes, then the time.
fn read_location(
    row: &Row,
    first: usize,
    width: usize,
    read: fn(&Row, usize, &str) -> Result<Position, StoreError>,
) -> Result<Location, StoreError> {
    let id: LocationId = get(row, first, "location")?;
    let what = format!("location {id}");
    let person_id: PersonId = get(row, first + 1, &what)?;
    let coordinate = coordinate(row, first + 2, &what)?;
    let position = read(row, first + 3, &what)?;
    let time: NaiveDateTime = get(row, first + 3 + width, &what)?;
    Ok(Location {
        id,
        person_id,
        coordinate,
        position,
        time: Timestamp::from_naive(time),
    })
}

/// The raw X/Y of the `geometry` at `index`, which must be numbers.
fn coordinate(row: &Row, index: usize, what: &str) -> Result<Coordinate, StoreError> {
    let Wkb { x, y } = get(row, index, what)?;
    if !x.is_finite() || !y.is_finite() {
        return Err(StoreError::Corrupt(format!(
            "{what}: its coordinate is ({x}, {y}), not a point"
        )));
    }
    Ok(Coordinate { x, y })
}

/// A position from the `geography` point at `index`.
pub fn position(row: &Row, index: usize, what: &str) -> Result<Position, StoreError> {
    let Wkb { x: lon, y: lat } = get(row, index, what)?;
    valid_position(lat, lon, what)
}

/// A position from the latitude at `index` and the longitude after it.
pub fn lat_lon(row: &Row, index: usize, what: &str) -> Result<Position, StoreError> {
    valid_position(get(row, index, what)?, get(row, index + 1, what)?, what)
}

fn valid_position(lat: f64, lon: f64, what: &str) -> Result<Position, StoreError> {
    Position::new(lat, lon).map_err(|err| StoreError::Corrupt(format!("{what}: point {err}")))
}

/// A database error, sorted by its SQLSTATE (see [`super::sqlstate`]):
/// worth retrying later, or rejected for good.
pub fn database(err: tokio_postgres::Error) -> StoreError {
    super::sqlstate::classify(&err, describe)
}

fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => err.to_string(),
    }
}
