//! Who is calling, and what each kind of caller may do: the one place the
//! access rules are written, for every transport.
//!
//! | caller    | may                                                        |
//! |-----------|------------------------------------------------------------|
//! | organiser | everything                                                 |
//! | attendee  | read their own person, locations, meetings, connections    |
//! | device    | submit positions for its own person; nothing else          |
//! | nobody    | nothing but the page, the docs and health (open API: all)  |
//!
//! A caller without a token is refused with 401; a caller with a token
//! that does not allow what it asks, with 403. A token that is unknown or
//! revoked is refused with 401, whatever is asked, even where no token is
//! needed: a client told its token is bad learns it at once.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use platform::http::ApiError;
use udaconnect_domain::{CredentialId, PersonId};

use super::Access;

/// Whose credential a caller presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// The person it is for.
    pub person: PersonId,
    /// The credential.
    pub credential: CredentialId,
}

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// No token (with the open API: treated as the organiser).
    Nobody,
    /// The organiser's token, or nobody on an open API.
    Organiser,
    /// An attendee's link.
    Attendee(Holder),
    /// A phone's token.
    Device(Holder),
}

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No token where one is needed, or one that is unknown or revoked.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A token that does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// The credentials cannot be checked now (the database is away).
    #[error("credentials cannot be checked now; retry later")]
    Unavailable,
}

impl Denied {
    /// The status it is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Denied::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Denied::Forbidden(_) => StatusCode::FORBIDDEN,
            Denied::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The answer to a call without a token.
pub const NO_TOKEN: &str = "this needs a token: `Authorization: Bearer <token>`";
/// The answer to a token that is unknown or revoked.
pub const BAD_TOKEN: &str = "the token is unknown or revoked";

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        ApiError {
            status: denied.status(),
            message: denied.to_string(),
        }
    }
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let mut response = ApiError::from(self).into_response();
        if response.status() == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"udaconnect\""),
            );
        }
        response
    }
}

impl Caller {
    /// Only the organiser.
    pub fn organiser(&self) -> Result<(), Denied> {
        match self {
            Caller::Organiser => Ok(()),
            Caller::Nobody => Err(Denied::Unauthenticated(NO_TOKEN)),
            Caller::Attendee(_) | Caller::Device(_) => Err(Denied::Forbidden(
                "only the organiser may do this".to_owned(),
            )),
        }
    }

    /// The organiser, or the attendee `person` (their own data).
    pub fn reads(&self, person: PersonId) -> Result<(), Denied> {
        match self {
            Caller::Organiser => Ok(()),
            Caller::Attendee(holder) if holder.person == person => Ok(()),
            Caller::Nobody => Err(Denied::Unauthenticated(NO_TOKEN)),
            Caller::Attendee(_) => Err(Denied::Forbidden(format!(
                "an attendee's link reads only its own person's data, not person {person}'s"
            ))),
            Caller::Device(_) => Err(Denied::Forbidden(
                "a device's token only submits positions".to_owned(),
            )),
        }
    }

    /// Any caller with a valid token but a device (counts, not persons).
    pub fn reads_counts(&self) -> Result<(), Denied> {
        match self {
            Caller::Organiser | Caller::Attendee(_) => Ok(()),
            Caller::Nobody => Err(Denied::Unauthenticated(NO_TOKEN)),
            Caller::Device(_) => Err(Denied::Forbidden(
                "a device's token only submits positions".to_owned(),
            )),
        }
    }

    /// The organiser (for anyone), or a phone of `person`.
    pub fn submits(&self, person: PersonId) -> Result<(), Denied> {
        match self {
            Caller::Organiser => Ok(()),
            Caller::Device(holder) if holder.person == person => Ok(()),
            Caller::Nobody => Err(Denied::Unauthenticated(NO_TOKEN)),
            Caller::Device(_) => Err(Denied::Forbidden(format!(
                "a device submits positions for its own person only, not for person {person}"
            ))),
            Caller::Attendee(_) => Err(Denied::Forbidden(
                "an attendee's link does not submit positions; a device's token does".to_owned(),
            )),
        }
    }

    /// Only a phone: the phones' apps' endpoints, whose requests name no
    /// person, take positions for the device's own person alone.
    pub fn device(&self) -> Result<Holder, Denied> {
        match self {
            Caller::Device(holder) => Ok(*holder),
            Caller::Nobody => Err(Denied::Unauthenticated(NO_TOKEN)),
            Caller::Organiser => Err(Denied::Forbidden(
                "the phones' apps send a device's token; the organiser submits through /api/v2/locations"
                    .to_owned(),
            )),
            Caller::Attendee(_) => Err(Denied::Forbidden(
                "an attendee's link does not submit positions; a device's token does".to_owned(),
            )),
        }
    }

    /// Who may submit positions at all: the organiser, or a phone (each of
    /// whose positions is then checked with [`Self::submits`]).
    pub fn submits_any(&self) -> Result<(), Denied> {
        match self {
            Caller::Organiser | Caller::Device(_) => Ok(()),
            Caller::Nobody => Err(Denied::Unauthenticated(NO_TOKEN)),
            Caller::Attendee(_) => Err(Denied::Forbidden(
                "an attendee's link does not submit positions; a device's token does".to_owned(),
            )),
        }
    }
}

/// The token of a request: `Authorization: Bearer <token>` (the query's
/// `access_token` is moved there by [`super::query_token`]).
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Denied> {
    headers
        .get(header::AUTHORIZATION)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(bearer_token)
                .ok_or(Denied::Unauthenticated(
                    "the Authorization header is not `Bearer <token>`",
                ))
        })
        .transpose()
}

/// The token of an `authorization` value (HTTP header or gRPC metadata):
/// `Bearer <token>`, the scheme in any case; `None` if it is not one.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(access) = parts.extensions.get::<Access>().cloned() else {
            return Err(ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: "the server's access rules are not in place".to_owned(),
            }
            .into_response());
        };
        let token = bearer(&parts.headers).map_err(IntoResponse::into_response)?;
        access
            .caller(token)
            .await
            .map_err(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Holder = Holder {
        person: 1,
        credential: 10,
    };

    #[test]
    fn each_caller_may_do_what_the_table_says() {
        let attendee = Caller::Attendee(A);
        let device = Caller::Device(A);
        let status = |result: Result<(), Denied>| result.err().map(|denied| denied.status());
        let (ok, unauthorised, forbidden) = (
            None,
            Some(StatusCode::UNAUTHORIZED),
            Some(StatusCode::FORBIDDEN),
        );
        assert_eq!(status(Caller::Organiser.organiser()), ok);
        assert_eq!(status(Caller::Nobody.organiser()), unauthorised);
        assert_eq!(status(attendee.organiser()), forbidden);
        assert_eq!(status(device.organiser()), forbidden);

        assert_eq!(status(Caller::Organiser.reads(2)), ok);
        assert_eq!(status(attendee.reads(1)), ok);
        assert_eq!(status(attendee.reads(2)), forbidden);
        assert_eq!(status(device.reads(1)), forbidden);
        assert_eq!(status(Caller::Nobody.reads(1)), unauthorised);

        assert_eq!(status(Caller::Organiser.submits(2)), ok);
        assert_eq!(status(device.submits(1)), ok);
        assert_eq!(status(device.submits(2)), forbidden);
        assert_eq!(status(attendee.submits(1)), forbidden);
        assert_eq!(status(Caller::Nobody.submits(1)), unauthorised);

        assert_eq!(status(attendee.reads_counts()), ok);
        assert_eq!(status(device.reads_counts()), forbidden);
        assert_eq!(status(device.submits_any()), ok);
        assert_eq!(status(attendee.submits_any()), forbidden);

        assert_eq!(device.device(), Ok(A));
        assert_eq!(status(attendee.device().map(|_| ())), forbidden);
        assert_eq!(status(Caller::Organiser.device().map(|_| ())), forbidden);
        assert_eq!(status(Caller::Nobody.device().map(|_| ())), unauthorised);
    }
}
