//! Handing out and taking back access: the organiser makes an attendee's
//! link or a phone's token for a person (`POST
//! /api/v2/persons/{id}/credentials`) and sees it once, with what the
//! attendee or their phone's app needs (the page's link; OwnTracks' setup
//! link and Traccar Client's server URL and identifier); the organiser
//! and the attendee list a person's credentials (never a token) and
//! revoke them (`DELETE /api/v2/credentials/{id}`: a lost phone);
//! `GET /api/v2/me` tells a caller what its token is.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use platform::http::{ApiError, ApiJson};
use serde::{Deserialize, Serialize};
use udaconnect_domain::{
    Credential, CredentialKind, NewCredential, Timestamp, credential::MAX_LABEL,
};
use utoipa::ToSchema;

use super::{
    params,
    state::{ApiState, store_error},
    wire::ErrorJson,
};
use crate::{
    access::{Access, Caller, Denied, token},
    ingest::validate::shown,
};

/// Where the phones' apps post: OwnTracks (HTTP mode).
pub const OWNTRACKS_PATH: &str = "/api/v2/owntracks";
/// Where the phones' apps post: Traccar Client and other OsmAnd senders.
pub const OSMAND_PATH: &str = "/api/v2/osmand";

/// A credential to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCredentialJson {
    /// `attendee` (a link to their own page and data) or `device` (a phone that submits positions).
    pub kind: String,
    /// A name to tell it by ("Ana's phone"), 1 to 100 characters; default: the kind.
    pub label: Option<String>,
}

/// A credential, without its token.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialJson {
    /// Its id, to revoke it by.
    pub id: i64,
    /// Whose.
    pub person_id: i32,
    /// `attendee` or `device`.
    pub kind: &'static str,
    /// Its name.
    pub label: String,
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
    /// When it was revoked, if it was.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked: Option<Timestamp>,
}

impl From<&Credential> for CredentialJson {
    fn from(credential: &Credential) -> Self {
        Self {
            id: credential.id,
            person_id: credential.person_id,
            kind: credential.kind.as_str(),
            label: credential.label.clone(),
            created: credential.created,
            revoked: credential.revoked,
        }
    }
}

/// A person's credentials.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialsJson {
    /// By id.
    pub credentials: Vec<CredentialJson>,
}

/// What OwnTracks needs: its HTTP mode's settings, or all of them in one
/// tap.
#[derive(Debug, Serialize, ToSchema)]
pub struct OwnTracksSetup {
    /// Mode HTTP; this URL.
    pub url: String,
    /// Any user name (the person's, here).
    pub username: String,
    /// The token.
    pub password: String,
    /// `owntracks:///config?inline=…`: opened on the phone (or scanned as a QR code), it fills in mode, URL, user and password.
    pub setup_link: String,
}

/// What Traccar Client (or another OsmAnd sender) needs.
#[derive(Debug, Serialize, ToSchema)]
pub struct TraccarSetup {
    /// Its "Server URL".
    pub server_url: String,
    /// Its "Device identifier": the token.
    pub device_identifier: String,
}

/// A credential just made: the only time its token is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedCredentialJson {
    /// The credential.
    #[serde(flatten)]
    pub credential: CredentialJson,
    /// The token: `Authorization: Bearer <token>`. Shown once; only its digest is kept.
    pub token: String,
    /// An attendee's personal link to their own page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// A device's settings for OwnTracks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owntracks: Option<OwnTracksSetup>,
    /// A device's settings for Traccar Client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traccar: Option<TraccarSetup>,
}

/// Who a token is.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeJson {
    /// `organiser`, `attendee`, `device`, or `nobody` (no token).
    pub caller: &'static str,
    /// The person an attendee's link or a device's token is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person_id: Option<i32>,
    /// Whether everyone reads and writes everything without a token.
    pub open_api: bool,
}

/// Makes an attendee's link or a device's token for person `person_id`.
///
/// **Who may call:** the organiser.
#[utoipa::path(
    post, path = "/api/v2/persons/{person_id}/credentials", tag = "access",
    params(("person_id" = i32, Path, description = "The person's id")),
    request_body = NewCredentialJson,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Made; the token is shown this once", body = CreatedCredentialJson),
        (status = 400, description = "A bad kind or label", body = ErrorJson),
        (status = 401, description = "No token, or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "Not the organiser", body = ErrorJson),
        (status = 404, description = "No such person", body = ErrorJson),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    Path(person_id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewCredentialJson>,
) -> Result<Response, ApiError> {
    let person_id = params::id("person_id", &person_id)?;
    caller.organiser()?;
    let kind = CredentialKind::parse(&body.kind).ok_or_else(|| {
        ApiError::bad_request(format!(
            "kind must be `attendee` or `device`, not {}",
            shown(&body.kind)
        ))
    })?;
    let label = match body.label.as_deref().map(str::trim) {
        None => kind.as_str().to_owned(),
        Some(label) if label.is_empty() || label.chars().count() > MAX_LABEL => {
            return Err(ApiError::bad_request(format!(
                "label must be 1 to {MAX_LABEL} characters"
            )));
        }
        Some(label) if label.chars().any(char::is_control) => {
            return Err(ApiError::bad_request(
                "label must hold no control character",
            ));
        }
        Some(label) => label.to_owned(),
    };
    let person = state.person(person_id).await?;
    let minted = token::mint(kind);
    let credential = state
        .store
        .create_credential(&NewCredential {
            person_id,
            kind,
            label,
            digest: minted.digest,
        })
        .await
        .map_err(store_error)?;
    let base = base_url(&state.access, &headers);
    let mut created = CreatedCredentialJson {
        credential: CredentialJson::from(&credential),
        token: minted.token.clone(),
        link: None,
        owntracks: None,
        traccar: None,
    };
    match kind {
        CredentialKind::Attendee => {
            created.link = Some(format!("{base}/#token={}", minted.token));
        }
        CredentialKind::Device => {
            let username = format!("person{}", person.id);
            created.owntracks = Some(owntracks_setup(&base, &username, &minted.token));
            created.traccar = Some(TraccarSetup {
                server_url: format!("{base}{OSMAND_PATH}"),
                device_identifier: minted.token,
            });
        }
    }
    tracing::info!(
        credential = credential.id,
        person = person_id,
        kind = kind.as_str(),
        "credential made"
    );
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Person `person_id`'s credentials, without their tokens.
///
/// **Who may call:** the organiser, or the attendee themselves.
#[utoipa::path(
    get, path = "/api/v2/persons/{person_id}/credentials", tag = "access",
    params(("person_id" = i32, Path, description = "The person's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "By id", body = CredentialsJson),
        (status = 401, description = "No token, or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "Another person's, or a device's token", body = ErrorJson),
        (status = 404, description = "No such person", body = ErrorJson),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Path(person_id): Path<String>,
) -> Result<Json<CredentialsJson>, ApiError> {
    let person_id = params::id("person_id", &person_id)?;
    caller.reads(person_id)?;
    state.person(person_id).await?;
    let credentials = state
        .store
        .credentials_of(person_id)
        .await
        .map_err(store_error)?;
    Ok(Json(CredentialsJson {
        credentials: credentials.iter().map(CredentialJson::from).collect(),
    }))
}

/// Revokes a credential: refused from now on (by every process within
/// `UDACONNECT_AUTH_CACHE`). Revoking it again changes nothing.
///
/// **Who may call:** the organiser, or the attendee whose credential it is
/// (a lost phone).
#[utoipa::path(
    delete, path = "/api/v2/credentials/{credential_id}", tag = "access",
    params(("credential_id" = i64, Path, description = "The credential's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Revoked", body = CredentialJson),
        (status = 401, description = "No token, or one unknown or revoked", body = ErrorJson),
        (status = 403, description = "Another person's, or a device's token", body = ErrorJson),
        (status = 404, description = "No such credential", body = ErrorJson),
    )
)]
pub async fn revoke(
    State(state): State<ApiState>,
    caller: Caller,
    Path(credential_id): Path<String>,
) -> Result<Json<CredentialJson>, ApiError> {
    let id: i64 = params::id("credential_id", &credential_id)?;
    let found = state.store.credential(id).await.map_err(store_error)?;
    match (&caller, &found) {
        (Caller::Organiser, None) => {
            return Err(ApiError::not_found(format!("credential {id} not found")));
        }
        (Caller::Organiser, Some(_)) => {}
        (_, Some(credential)) => caller.reads(credential.person_id)?,
        (_, None) => {
            caller.reads_counts()?;
            return Err(Denied::Forbidden(format!("credential {id} is not yours")).into());
        }
    }
    let revoked = state
        .store
        .revoke_credential(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("credential {id} not found")))?;
    state.access.forget(id);
    tracing::info!(credential = id, "credential revoked");
    Ok(Json(CredentialJson::from(&revoked)))
}

/// Who the caller's token is.
///
/// **Who may call:** anyone (no token: `nobody`).
#[utoipa::path(
    get, path = "/api/v2/me", tag = "access",
    responses(
        (status = 200, description = "Who the token is", body = MeJson),
        (status = 401, description = "A token unknown or revoked", body = ErrorJson),
    )
)]
pub async fn me(State(state): State<ApiState>, caller: Caller) -> Json<MeJson> {
    let (name, person) = match caller {
        Caller::Nobody => ("nobody", None),
        Caller::Organiser => ("organiser", None),
        Caller::Attendee(holder) => ("attendee", Some(holder.person)),
        Caller::Device(holder) => ("device", Some(holder.person)),
    };
    Json(MeJson {
        caller: name,
        person_id: person,
        open_api: state.access.is_open(),
    })
}

/// Where attendees and phones reach this server: `UDACONNECT_PUBLIC_URL`,
/// else the address the request came to (through a proxy, the one it
/// names).
fn base_url(access: &Access, headers: &HeaderMap) -> String {
    if let Some(url) = access.public_url() {
        return url.to_owned();
    }
    let header_text = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.split(',').next().unwrap_or(value).trim().to_owned())
            .filter(|value| !value.is_empty())
    };
    let host = header_text("x-forwarded-host")
        .or_else(|| header_text(header::HOST.as_str()))
        .filter(|host| {
            host.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let scheme = match header_text("x-forwarded-proto").as_deref() {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

/// OwnTracks' settings, and the link that applies them: a configuration
/// message, base64 (as `openssl enc -a -A` writes it), its `+`, `/` and `=`
/// escaped so that any query decoder gives them back.
fn owntracks_setup(base: &str, username: &str, token: &str) -> OwnTracksSetup {
    let url = format!("{base}{OWNTRACKS_PATH}");
    let configuration = serde_json::json!({
        "_type": "configuration",
        "mode": 3,
        "url": url,
        "auth": true,
        "username": username,
        "password": token,
        "deviceId": "phone",
    });
    let inline = STANDARD
        .encode(configuration.to_string())
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    OwnTracksSetup {
        url,
        username: username.to_owned(),
        password: token.to_owned(),
        setup_link: format!("owntracks:///config?inline={inline}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owntracks_link_carries_its_http_settings() {
        let setup = owntracks_setup("https://u.example.org", "person7", "ucd_abc");
        let inline = setup
            .setup_link
            .strip_prefix("owntracks:///config?inline=")
            .expect("an OwnTracks config link")
            .replace("%2B", "+")
            .replace("%2F", "/")
            .replace("%3D", "=");
        assert!(!inline.contains('%'));
        let decoded = STANDARD.decode(inline).expect("base64");
        let message: serde_json::Value = serde_json::from_slice(&decoded).expect("JSON");
        assert_eq!(message["_type"], "configuration");
        assert_eq!(message["mode"], 3, "HTTP mode");
        assert_eq!(message["url"], "https://u.example.org/api/v2/owntracks");
        assert_eq!(message["auth"], true);
        assert_eq!(message["username"], "person7");
        assert_eq!(message["password"], "ucd_abc");
    }
}
