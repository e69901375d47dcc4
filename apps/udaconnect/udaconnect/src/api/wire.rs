//! The v2 API's JSON: positions as `lat`/`lon` numbers, times as RFC 3339
//! in UTC, pages with an opaque `next_cursor`.

use serde::{Deserialize, Serialize};
use udaconnect_domain::{Contact, Location, Person, Timestamp};
use utoipa::ToSchema;

/// A person.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonJson {
    /// Unique id.
    pub id: i32,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Employer.
    pub company_name: String,
}

impl From<&Person> for PersonJson {
    fn from(person: &Person) -> Self {
        Self {
            id: person.id,
            first_name: person.first_name.clone(),
            last_name: person.last_name.clone(),
            company_name: person.company_name.clone(),
        }
    }
}

/// A person to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPersonJson {
    /// Given name (1 to 200 characters).
    pub first_name: String,
    /// Family name (1 to 200 characters).
    pub last_name: String,
    /// Employer (1 to 200 characters).
    pub company_name: String,
}

/// A page of persons, by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonsPage {
    /// The persons.
    pub persons: Vec<PersonJson>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// A location.
#[derive(Debug, Serialize, ToSchema)]
pub struct LocationJson {
    /// Unique id.
    pub id: i64,
    /// Whose.
    pub person_id: i32,
    /// Latitude, degrees (−90 ..= 90).
    pub lat: f64,
    /// Longitude, degrees (−180 ..= 180).
    pub lon: f64,
    /// When (RFC 3339, UTC).
    #[schema(value_type = String, example = "2020-06-01T10:00:00Z")]
    pub time: Timestamp,
}

impl From<&Location> for LocationJson {
    fn from(location: &Location) -> Self {
        Self {
            id: location.id,
            person_id: location.person_id,
            lat: location.position.lat,
            lon: location.position.lon,
            time: location.time,
        }
    }
}

/// A location to store.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLocationJson {
    /// Whose.
    pub person_id: i32,
    /// Latitude, degrees (−90 ..= 90).
    pub lat: f64,
    /// Longitude, degrees (−180 ..= 180).
    pub lon: f64,
    /// When (RFC 3339); now if absent.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "2020-06-01T10:00:00Z")]
    pub time: Option<Timestamp>,
}

/// A page of one person's locations, by time.
#[derive(Debug, Serialize, ToSchema)]
pub struct LocationsPage {
    /// The locations.
    pub locations: Vec<LocationJson>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// The closest encounter with a contact.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClosestJson {
    /// Metres between the two, to the millimetre.
    pub distance_m: f64,
    /// The contact's location.
    pub location_id: i64,
    /// Where the contact was: latitude.
    pub lat: f64,
    /// Where the contact was: longitude.
    pub lon: f64,
    /// When the contact was there.
    #[schema(value_type = String, example = "2020-06-01T10:00:00Z")]
    pub time: Timestamp,
}

/// Someone the person was near.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactJson {
    /// Who.
    pub person: PersonJson,
    /// How many (own location, their location) pairs were close.
    pub encounters: u64,
    /// Their earliest location among those pairs.
    #[schema(value_type = String)]
    pub first_met: Timestamp,
    /// Their latest location among those pairs.
    #[schema(value_type = String)]
    pub last_met: Timestamp,
    /// The closest pair.
    pub closest: ClosestJson,
}

impl From<&Contact> for ContactJson {
    fn from(contact: &Contact) -> Self {
        let closest = &contact.closest;
        Self {
            person: PersonJson::from(&contact.person),
            encounters: contact.encounters,
            first_met: contact.first_met,
            last_met: contact.last_met,
            closest: ClosestJson {
                distance_m: closest.distance_m,
                location_id: closest.location_id,
                lat: closest.position.lat,
                lon: closest.position.lon,
                time: closest.time,
            },
        }
    }
}

/// The question a connections page answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionsQueryJson {
    /// Own locations from (RFC 3339).
    #[schema(value_type = String)]
    pub start: Timestamp,
    /// Own locations until, excluded.
    #[schema(value_type = String)]
    pub end: Timestamp,
    /// Metres.
    pub distance_m: f64,
    /// Seconds between the two times of an encounter at most; `null`: any
    /// time from `start` to a day after `end`, as the original API.
    pub within_s: Option<f64>,
}

/// A page of contacts, most encounters first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionsPage {
    /// Whose contacts.
    pub person: PersonJson,
    /// The question.
    pub query: ConnectionsQueryJson,
    /// The contacts.
    pub contacts: Vec<ContactJson>,
    /// Pass as `cursor` (with the same parameters) for the next page;
    /// `null` on the last one.
    pub next_cursor: Option<String>,
}

/// Counts for a live header.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsJson {
    /// Persons stored.
    pub persons: u64,
    /// Locations stored.
    pub locations: u64,
    /// `postgis` or `embedded`.
    pub store: &'static str,
}

/// An error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorJson {
    /// What is wrong, naming the parameter or field.
    pub error: String,
}
