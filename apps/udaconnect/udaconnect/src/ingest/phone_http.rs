//! The phones' apps over HTTP, taken exactly as they send: OwnTracks in
//! HTTP mode (`POST /api/v2/owntracks`) and the OsmAnd protocol of
//! Traccar Client and others (`GET` and `POST /api/v2/osmand`, and the
//! bare address: [`osmand_at_root`]), read by [`super::phones`] and taken
//! through the edge's one path ([`super::edge`]) under the transport
//! labels `owntracks` and `osmand`.
//!
//! Each request names its device by the device's token (OwnTracks' Basic
//! password; OsmAnd's `id`, `deviceid` or JSON `device_id`), and nothing
//! else: no request can name a person, so a device's positions are always
//! its own person's. A token that is unknown or revoked is refused with
//! 401 (OwnTracks is challenged for Basic credentials, so that the app
//! shows an authentication error), any other caller's token with 403.
//!
//! The apps send a request again until it is answered with success
//! (OwnTracks: any 2xx; Traccar Client: 200), so: a message that holds
//! nothing to store (OwnTracks' other messages and empty body, OsmAnd's
//! `valid=false` or a fix without coordinates) is answered 200; a
//! location refused by the checks 400, naming why; a full or absent bus
//! 503 with `Retry-After`, and the app's resend is taken once (its key is
//! the device's and the fix's time: see [`super::phones`]).
//!
//! OwnTracks is answered with its person's friends ([`super::friends`]),
//! whatever it sent, as the app reads friends only from these answers.

use std::time::Duration;

use axum::{
    Json,
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use platform::http::ApiError;
use serde::Serialize;
use udaconnect_domain::{LocationId, Timestamp};
use utoipa::ToSchema;

use super::{
    edge::Edge,
    friends::{self, FriendMessage},
    http::{InvalidJson, failed, read_body, refused, too_large},
    phones::{
        Fix, Report, osmand,
        owntracks::{self, OwnTracksError},
    },
    single::Failure,
};
use crate::{
    access::{Caller, Denied, Holder},
    api::{credentials::OSMAND_PATH, wire::ErrorJson},
};

/// The transport label of OwnTracks' requests.
const OWNTRACKS: &str = "owntracks";
/// The transport label of OsmAnd's requests.
const OSMAND: &str = "osmand";
/// How long reading the friends may take; past it the app is answered
/// none this time (its positions are taken already).
const FRIENDS_TIMEOUT: Duration = Duration::from_secs(2);
/// The challenge that makes OwnTracks show an authentication error.
const BASIC_CHALLENGE: &str = "Basic realm=\"udaconnect\"";

/// What became of an OsmAnd request.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneReplyJson {
    /// How many locations were taken: 1, or 0 when the request held none.
    pub accepted: usize,
    /// Their ids (readable once written).
    pub ids: Vec<LocationId>,
    /// Why nothing was taken, when nothing was: `valid=false`, `no coordinates`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// OwnTracks in HTTP mode: its messages, as the app posts them. A
/// `location` is stored for the device's person; every other message,
/// and an empty body, is taken and stored nowhere. Answered with the
/// person's friends: whom they met today, each where they last met.
///
/// **Who may call:** a device (its token as the password of HTTP Basic authentication; any user name).
#[utoipa::path(
    post, path = "/api/v2/owntracks", tag = "phones",
    security(("owntracks" = [])),
    request_body(content = String, content_type = "application/json", description = "An OwnTracks message (`{\"_type\": \"location\", \"lat\": …, \"lon\": …, \"tst\": …}`, or any other `_type`), an array of them, or nothing"),
    responses(
        (status = 200, description = "Taken: the person's friends, a `card` and a `location` for each person met today, tied by `tid`", body = [FriendMessage]),
        (status = 400, description = "A body that is not OwnTracks messages, or a location refused by the checks (named, with the kind of problem)", body = InvalidJson),
        (status = 401, description = "No Basic credentials, or a token unknown or revoked (`WWW-Authenticate: Basic`)", body = ErrorJson),
        (status = 403, description = "Not a device's token", body = ErrorJson),
        (status = 413, description = "More messages or bytes than the edge takes at once", body = ErrorJson),
        (status = 503, description = "The bus is full or away: the app sends it again", body = ErrorJson),
    )
)]
pub async fn owntracks(State(edge): State<Edge>, headers: HeaderMap, body: Body) -> Response {
    let sender = match owntracks::sender(&headers) {
        Ok(sender) => sender,
        Err(err) => return challenge(err.to_string()),
    };
    let holder = match device(&edge, sender.token.as_str()).await {
        Ok(holder) => holder,
        Err(Denied::Unauthenticated(message)) => return challenge(message.to_owned()),
        Err(denied) => return denied.into_response(),
    };
    tracing::debug!(
        user = %sender.user,
        device = ?sender.device,
        person = holder.person,
        "an OwnTracks post"
    );
    let settings = edge.settings();
    let bytes = match read_body(body, &headers, settings.ingest_max_body).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let reports = match owntracks::reports(&bytes, settings.ingest_max_batch) {
        Ok(reports) => reports,
        Err(err @ OwnTracksError::TooMany { .. }) => return too_large(err.to_string()),
        Err(err) => return ApiError::bad_request(err.to_string()).into_response(),
    };
    drop(bytes);
    let fixes = reports
        .into_iter()
        .filter_map(|report| match report {
            Report::Location(fix) => Some(fix),
            Report::Nothing(why) => {
                tracing::debug!(why, "an OwnTracks message holds nothing to store");
                None
            }
        })
        .collect();
    if let Err(response) = take(&edge, OWNTRACKS, holder, fixes).await {
        return response;
    }
    let read = tokio::time::timeout(
        FRIENDS_TIMEOUT,
        friends::friends(edge.store(), holder.person, Timestamp::now()),
    )
    .await;
    let messages = match read {
        Ok(Ok(messages)) => messages,
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "cannot read a phone's friends");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!(timeout = ?FRIENDS_TIMEOUT, "a phone's friends not read in time");
            Vec::new()
        }
    };
    Json(messages).into_response()
}

/// The OsmAnd protocol, as Traccar Client and others send it: the
/// parameters in the query (`GET`, or `POST` with an empty body), the
/// body form-encoded, or Traccar Client 9's JSON. One position for the
/// device's person; one marked `valid=false`, or without coordinates
/// (cells or Wi-Fi only), is taken and stored nowhere. Also served at the
/// bare address (`POST /`, and `GET /` with `id` or `deviceid`), which is
/// what an app's "server URL" often is.
///
/// **Who may call:** a device (its token as `id` or `deviceid`, or JSON `device_id`).
#[utoipa::path(
    method(get, post), path = "/api/v2/osmand", tag = "phones",
    security(("osmand" = [])),
    params(
        ("id" = Option<String>, Query, description = "The device's token (or `deviceid`)"),
        ("lat" = Option<f64>, Query, description = "Latitude, degrees (or `location=lat,lon`)"),
        ("lon" = Option<f64>, Query, description = "Longitude, degrees"),
        ("timestamp" = Option<String>, Query, description = "Seconds or milliseconds since 1970-01-01, ISO 8601 with its offset, or `YYYY-MM-DD HH:MM:SS` (UTC); without it, the time the request is read"),
        ("accuracy" = Option<f64>, Query, description = "Metres"),
        ("valid" = Option<String>, Query, description = "Other than `true` or `1`: the position is not to be trusted, and not stored"),
    ),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The same parameters, form-encoded (read when the query has none), or Traccar Client 9's JSON (`application/json`: `{\"device_id\": …, \"location\": {\"timestamp\": …, \"coords\": {\"latitude\": …, \"longitude\": …, \"accuracy\": …}}}`)"),
    responses(
        (status = 200, description = "Taken, or nothing to store (`reason`)", body = PhoneReplyJson),
        (status = 400, description = "No device named, a malformed parameter, or a location refused by the checks (named, with the kind of problem)", body = InvalidJson),
        (status = 401, description = "A token unknown or revoked", body = ErrorJson),
        (status = 403, description = "Not a device's token", body = ErrorJson),
        (status = 413, description = "More bytes than the edge takes at once", body = ErrorJson),
        (status = 503, description = "The bus is full or away: retry after `Retry-After` seconds", body = ErrorJson),
    )
)]
pub async fn osmand(
    State(edge): State<Edge>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let bytes = match read_body(body, &headers, edge.settings().ingest_max_body).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let request = match osmand::parse(uri.query(), content_type, &bytes, Timestamp::now()) {
        Ok(request) => request,
        Err(err) => return ApiError::bad_request(err.to_string()).into_response(),
    };
    drop(bytes);
    let holder = match device(&edge, request.token.as_str()).await {
        Ok(holder) => holder,
        Err(denied) => return denied.into_response(),
    };
    let fix = match request.report {
        Report::Location(fix) => fix,
        Report::Nothing(why) => {
            tracing::debug!(
                why,
                person = holder.person,
                "an OsmAnd request holds nothing to store"
            );
            return Json(PhoneReplyJson {
                accepted: 0,
                ids: Vec::new(),
                reason: Some(why),
            })
            .into_response();
        }
    };
    match take(&edge, OSMAND, holder, vec![fix]).await {
        Ok(ids) => Json(PhoneReplyJson {
            accepted: ids.len(),
            ids,
            reason: None,
        })
        .into_response(),
        Err(response) => response,
    }
}

/// The device `token` stands for, or why it is refused.
async fn device(edge: &Edge, token: &str) -> Result<Holder, Denied> {
    edge.access().caller(Some(token)).await?.device()
}

/// A 401 that asks OwnTracks for its Basic credentials.
fn challenge(message: String) -> Response {
    let mut response = ApiError {
        status: StatusCode::UNAUTHORIZED,
        message,
    }
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(BASIC_CHALLENGE),
    );
    response
}

/// Takes `fixes` of `holder`'s device through the edge: their ids, or the
/// answer refusing them (400 naming the first refused, 503 to retry).
async fn take(
    edge: &Edge,
    transport: &'static str,
    holder: Holder,
    fixes: Vec<Fix>,
) -> Result<Vec<LocationId>, Response> {
    if fixes.is_empty() {
        return Ok(Vec::new());
    }
    let mut batch = edge.batch();
    for fix in fixes {
        batch
            .push(|| Ok(fix.submitted(i64::from(holder.person), holder.credential)))
            .map_err(|too_many| too_large(too_many.to_string()))?;
    }
    let outcome = edge
        .ingest(transport, Caller::Device(holder), batch)
        .await
        .map_err(|refusal| refused(edge, &refusal))?;
    match outcome.rejected.listed().first() {
        None => Ok(outcome.ids()),
        Some(rejection) => Err(failed(edge, Failure::Invalid(rejection.invalid.clone()))),
    }
}

/// `request` addressed to OsmAnd's path when it comes to the bare address
/// as an OsmAnd request: a `POST /` (nothing else takes one; Traccar Client
/// 9 posts its JSON to the server URL as typed), or a `GET /` whose query
/// names a device (`id` or `deviceid`). Every other request, `GET /` of
/// the page among them, is left as it is. Run before routing, so that no
/// route is matched twice.
pub fn osmand_at_root(mut request: Request) -> Request {
    let uri = request.uri();
    if uri.path() != "/" {
        return request;
    }
    let names_device = uri.query().is_some_and(|query| {
        query.split('&').any(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            name == "id" || name == "deviceid"
        })
    });
    let method = request.method();
    if !(*method == Method::POST || (*method == Method::GET && names_device)) {
        return request;
    }
    let target = match uri.query() {
        Some(query) => format!("{OSMAND_PATH}?{query}"),
        None => OSMAND_PATH.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = target.parse().ok();
    if let Ok(rewritten) = Uri::from_parts(parts) {
        *request.uri_mut() = rewritten;
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(method: Method, uri: &str) -> String {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .expect("a request");
        osmand_at_root(request).uri().to_string()
    }

    #[test]
    fn the_bare_address_is_osmands_for_its_requests_only() {
        assert_eq!(routed(Method::POST, "/"), "/api/v2/osmand");
        assert_eq!(
            routed(Method::POST, "/?id=t&lat=1&lon=2"),
            "/api/v2/osmand?id=t&lat=1&lon=2"
        );
        assert_eq!(
            routed(Method::GET, "/?lat=1&lon=2&id=t"),
            "/api/v2/osmand?lat=1&lon=2&id=t"
        );
        assert_eq!(
            routed(Method::GET, "/?deviceid=t&lat=1&lon=2"),
            "/api/v2/osmand?deviceid=t&lat=1&lon=2"
        );
        assert_eq!(
            routed(Method::POST, "http://example.org/?id=t"),
            "http://example.org/api/v2/osmand?id=t"
        );
        // The page, and everything else, as they are.
        for (method, uri) in [
            (Method::GET, "/"),
            (Method::GET, "/?token=abc"),
            (Method::GET, "/?identity=t"),
            (Method::HEAD, "/?id=t"),
            (Method::GET, "/api/v2/stats?id=t"),
            (Method::POST, "/api/v2/locations"),
            (Method::POST, "/api/v2/osmand?id=t"),
        ] {
            assert_eq!(routed(method.clone(), uri), uri, "{method} {uri}");
        }
    }
}
