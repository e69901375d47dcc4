//! `GET /api/v2/persons/{id}/export`: everything stored about a person,
//! as one document to download: the person, their links and devices
//! (never a token), all their locations, and
//! their meetings, each with the other person as the meetings endpoint
//! shows them; or, with `?format=geojson`, their track.
//!
//! The answer is streamed: the store is read a page at a time, each page
//! encoded as the client takes the one before, so that the memory an
//! export holds is a page's, however long the person's history. A store
//! that fails midway ends the answer early, unterminated, which no client
//! takes for a whole document.
//!
//! The track is a GeoJSON FeatureCollection of one Point feature per
//! location, in time order, each with its id and time as properties
//! (coordinates `[lon, lat]`, as GeoJSON has them). Points rather than
//! one LineString: QGIS loads them as a layer whose `time` attribute its
//! temporal controller plays back and whose features it can style and
//! filter one by one, and geojson.io shows each with its id and time when
//! clicked; a LineString keeps no time or id per position (GeoJSON has no
//! properties per vertex), and draws a straight line across every gap
//! between two days at the conference as if it had been walked.

use axum::{
    body::{Body, Bytes},
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::stream;
use platform::http::{ApiError, ApiQuery};
use serde::{Deserialize, Serialize};
use udaconnect_domain::{
    LocationCursor, LocationRange, PersonId, Timestamp,
    meeting::{MAX_MEETINGS_PAGE, MeetingCursor, MeetingQuery},
};
use utoipa::{IntoParams, ToSchema};

use crate::access::Caller;

use super::{
    credentials::CredentialJson,
    meetings::{MeetingJson, json, others},
    params,
    state::{ApiState, store_error},
    v2::open_range,
    wire::{ErrorJson, LocationJson, PersonJson},
};

/// Locations read from the store, and encoded, at a time.
const PAGE: usize = 1000;

/// `GET /api/v2/persons/{id}/export` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `json` (the default): the person, their locations and their meetings; `geojson`: their track, one Point feature per location in time order.
    format: Option<String>,
}

/// Everything stored about a person.
#[derive(Debug, ToSchema)]
pub struct ExportJson {
    /// The person.
    pub person: PersonJson,
    /// Their attendee links and devices, never a token (only digests are kept, and those are not shown).
    pub devices: Vec<CredentialJson>,
    /// Every location of theirs, by time.
    pub locations: Vec<LocationJson>,
    /// Every meeting of theirs, most recent first, with the other person.
    pub meetings: Vec<MeetingJson>,
}

/// A person's track.
#[derive(Debug, ToSchema)]
pub struct TrackJson {
    /// `FeatureCollection`.
    #[schema(example = "FeatureCollection")]
    pub r#type: String,
    /// One Point per location, in time order.
    pub features: Vec<PointFeatureJson>,
}

/// One location of a track.
#[derive(Debug, Serialize, ToSchema)]
pub struct PointFeatureJson {
    /// `Feature`.
    #[schema(value_type = String, example = "Feature")]
    r#type: &'static str,
    /// Where.
    geometry: PointJson,
    /// Which location, and when.
    properties: PointPropertiesJson,
}

/// A GeoJSON Point.
#[derive(Debug, Serialize, ToSchema)]
pub struct PointJson {
    /// `Point`.
    #[schema(value_type = String, example = "Point")]
    r#type: &'static str,
    /// `[longitude, latitude]`, degrees.
    coordinates: [f64; 2],
}

/// What a track's point says of its location.
#[derive(Debug, Serialize, ToSchema)]
pub struct PointPropertiesJson {
    /// The location's id.
    id: i64,
    /// When (RFC 3339, UTC).
    #[schema(value_type = String, example = "2020-06-08T10:00:00Z")]
    time: Timestamp,
}

impl From<&LocationJson> for PointFeatureJson {
    fn from(location: &LocationJson) -> Self {
        Self {
            r#type: "Feature",
            geometry: PointJson {
                r#type: "Point",
                coordinates: [location.lon, location.lat],
            },
            properties: PointPropertiesJson {
                id: location.id,
                time: location.time,
            },
        }
    }
}

/// What an export is made as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    GeoJson,
}

impl Format {
    fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("json") => Ok(Self::Json),
            Some("geojson") => Ok(Self::GeoJson),
            Some(other) => Err(ApiError::bad_request(format!(
                "format must be json or geojson, got {other:?}"
            ))),
        }
    }
}

/// Everything stored about a person, as one JSON document to download
/// (streamed as it is read); or their track as GeoJSON.
///
/// **Who may call:** the organiser, or the attendee themselves (their link).
#[utoipa::path(
    get, path = "/api/v2/persons/{person_id}/export", tag = "v2",
    security(("bearer" = [])),
    params(("person_id" = i32, Path, description = "The person's id"), ExportParams),
    responses(
        (status = 200, description = "The document, as an attachment (Content-Disposition names its file)",
            content((ExportJson = "application/json"), (TrackJson = "application/geo+json"))),
        (status = 400, description = "Not a number, or a format other than json or geojson", body = ErrorJson),
        (status = 401, description = "No token (the API is not open), or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "Another person's, or a device's token", body = ErrorJson),
        (status = 404, description = "No such person", body = ErrorJson),
    )
)]
pub async fn export(
    State(state): State<ApiState>,
    caller: Caller,
    Path(person_id): Path<String>,
    ApiQuery(query): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    let id = params::id("person_id", &person_id)?;
    caller.reads(id)?;
    let format = Format::parse(query.format.as_deref())?;
    let (start, end) = open_range(None, None)?;
    let person = state.person(id).await?;
    let head = match format {
        Format::Json => {
            let person =
                serde_json::to_string(&PersonJson::from(&person)).map_err(|err| ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: format!("cannot encode the person: {err}"),
                })?;
            let credentials = state.store.credentials_of(id).await.map_err(store_error)?;
            let devices: Vec<CredentialJson> =
                credentials.iter().map(CredentialJson::from).collect();
            let devices = serde_json::to_string(&devices).map_err(|err| ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("cannot encode the devices: {err}"),
            })?;
            format!("{{\"person\":{person},\"devices\":{devices},\"locations\":[")
        }
        Format::GeoJson => "{\"type\":\"FeatureCollection\",\"features\":[".to_owned(),
    };
    let export = Export {
        state,
        person: id,
        format,
        range: (start, end),
        head: Some(head),
        step: Step::Locations(None),
        first: true,
    };
    let body = stream::try_unfold(export, |mut export| async move {
        let chunk = export.next().await.inspect_err(|err| {
            tracing::warn!(error = %err, "an export failed midway: its answer ends unterminated");
        })?;
        Ok::<_, std::io::Error>(chunk.map(|chunk| (chunk, export)))
    });
    let (content_type, extension) = match format {
        Format::Json => ("application/json", "json"),
        Format::GeoJson => ("application/geo+json", "geojson"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"udaconnect-person-{id}.{extension}\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// Where an export has got to.
enum Step {
    /// The locations after this one (from the first without).
    Locations(Option<LocationCursor>),
    /// The meetings after this one (from the most recent without).
    Meetings(Option<MeetingCursor>),
    /// Sent whole.
    Done,
}

/// An export being sent.
struct Export {
    state: ApiState,
    person: PersonId,
    format: Format,
    /// All of time.
    range: (Timestamp, Timestamp),
    /// What comes before the first page, until it is sent.
    head: Option<String>,
    step: Step,
    /// Whether the next item is its array's first.
    first: bool,
}

impl Export {
    /// The next chunk of the document: a page of it, with whatever opens
    /// or closes around it; `None` once it is all sent.
    async fn next(&mut self) -> Result<Option<Bytes>, std::io::Error> {
        let mut chunk = self.head.take().unwrap_or_default().into_bytes();
        match self.step {
            Step::Locations(after) => self.locations(after, &mut chunk).await?,
            Step::Meetings(after) => self.meetings(after, &mut chunk).await?,
            Step::Done => return Ok(None),
        }
        Ok(Some(Bytes::from(chunk)))
    }

    /// A page of locations into `chunk`; the last one closes their array.
    async fn locations(
        &mut self,
        after: Option<LocationCursor>,
        chunk: &mut Vec<u8>,
    ) -> Result<(), std::io::Error> {
        let page = self
            .state
            .store
            .locations_of(&LocationRange {
                person_id: self.person,
                start: self.range.0,
                end: self.range.1,
                after,
                limit: PAGE,
            })
            .await
            .map_err(std::io::Error::other)?;
        for location in &page {
            let location = LocationJson::from(location);
            match self.format {
                Format::Json => self.item(chunk, &location)?,
                Format::GeoJson => self.item(chunk, &PointFeatureJson::from(&location))?,
            }
        }
        self.step = match page.last() {
            Some(last) if page.len() == PAGE => Step::Locations(Some(LocationCursor {
                time: last.time,
                id: last.id,
            })),
            _ => match self.format {
                Format::Json => {
                    chunk.extend_from_slice(b"],\"meetings\":[");
                    self.first = true;
                    Step::Meetings(None)
                }
                Format::GeoJson => {
                    chunk.extend_from_slice(b"]}");
                    Step::Done
                }
            },
        };
        Ok(())
    }

    /// A page of meetings into `chunk`, each with the other person as
    /// the meetings endpoint shows them (one who no longer exists left
    /// out); the last one closes the document.
    async fn meetings(
        &mut self,
        after: Option<MeetingCursor>,
        chunk: &mut Vec<u8>,
    ) -> Result<(), std::io::Error> {
        let page = self
            .state
            .store
            .meetings(&MeetingQuery {
                person: self.person,
                start: self.range.0,
                end: self.range.1,
                after,
                limit: MAX_MEETINGS_PAGE,
            })
            .await
            .map_err(std::io::Error::other)?;
        let with = others(&self.state, self.person, &page)
            .await
            .map_err(|err| std::io::Error::other(err.message))?;
        for kept in &page {
            let (a, b) = kept.meeting.persons;
            let other = if a == self.person { b } else { a };
            if let Some(other) = with.get(&other) {
                self.item(chunk, &json(kept, other))?;
            }
        }
        self.step = match page.last() {
            Some(last) if page.len() == MAX_MEETINGS_PAGE => Step::Meetings(Some(MeetingCursor {
                start: last.meeting.start,
                id: last.id,
            })),
            _ => {
                chunk.extend_from_slice(b"]}");
                Step::Done
            }
        };
        Ok(())
    }

    /// `item` into `chunk`, after a comma unless it is its array's first.
    fn item(&mut self, chunk: &mut Vec<u8>, item: &impl Serialize) -> Result<(), std::io::Error> {
        if !std::mem::take(&mut self.first) {
            chunk.push(b',');
        }
        serde_json::to_writer(chunk, item).map_err(std::io::Error::other)
    }
}
