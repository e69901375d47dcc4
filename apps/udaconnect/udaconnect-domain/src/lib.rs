//! UdaConnect's domain: who was where, when, and who was near whom.
//!
//! Persons attend a conference; their phones report locations. A
//! *connection* is another person's location close (on the WGS 84
//! ellipsoid) to one of the person's own, within a time range. This crate
//! holds the records ([`model`]), the exact semantics of both connection
//! queries ([`query`]: the original API's, kept, and the summarised v2
//! one), meetings: whom a person was with, when, where and for how long
//! ([`meeting`]), geodesic distances ([`geodesic`]), clients' idempotency keys and how
//! their claims are decided ([`claim`]), who may call ([`credential`]),
//! what erasing a person removes and how others learn of it
//! ([`erasure`]), and the contract every store
//! keeps ([`store`]), so that PostGIS and the embedded store give the same
//! answers; [`conference`] makes up data for benchmarks, tests and demos.

pub mod claim;
pub mod conference;
pub mod credential;
pub mod erasure;
pub mod geodesic;
pub mod meeting;
pub mod model;
pub mod query;
pub mod store;
pub mod time;

pub use self::{
    claim::{ClaimOutcome, KeyClaim},
    credential::{Credential, CredentialId, CredentialKind, Digest, NewCredential},
    erasure::{Erased, Erasures},
    model::{
        Coordinate, Invalid, Location, LocationId, LocationRecord, NewLocation, NewPerson, Person,
        PersonId, Position, Problem,
    },
    query::{
        Closest, CompatConnection, CompatQuery, ConnectionQuery, Contact, ContactCursor, Distance,
        LocationCursor, LocationRange, PersonOrder, PersonSearch, Within,
    },
    store::{InsertReport, Stats, Store, StoreError},
    time::Timestamp,
};
