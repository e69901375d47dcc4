//! The attendees' phones. On a closed API the simulator is given the
//! organiser's token; with it, each simulated attendee gets a device
//! credential through the API, as an organiser hands one to each
//! attendee's phone, and the attendee's positions are then sent with that
//! phone's token only, as a real phone sends them: the edge refuses a
//! phone's request that holds another person's position, so the
//! simulator's requests never mix attendees. A phone's token lives in
//! memory for the run and is never logged, not even at debug.

use std::{fmt, sync::Arc};

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use reqwest::StatusCode;
use serde_json::json;
use tonic::metadata::{Ascii, MetadataValue};
use udaconnect_domain::PersonId;

/// Device credentials made at once while the attendees are enrolled.
const ENROLLING_AT_ONCE: usize = 16;
/// The label each simulated phone's credential is given.
const LABEL: &str = "simulated phone";

/// A phone's token. Its `Debug` shows none of it, and it has no `Display`:
/// it goes into an `Authorization` header or `authorization` metadata
/// only.
#[derive(Clone)]
pub(crate) struct PhoneToken {
    token: Arc<str>,
    /// `Bearer <token>`, for the gRPC calls.
    metadata: MetadataValue<Ascii>,
}

impl PhoneToken {
    /// A token the API handed out, if it fits in a header as it is.
    pub(super) fn new(token: &str) -> Option<Self> {
        let fits = !token.is_empty()
            && token.len() <= crate::access::token::MAX_CHARS
            && token.chars().all(|c| c.is_ascii_graphic());
        if !fits {
            return None;
        }
        Some(Self {
            token: Arc::from(token),
            metadata: format!("Bearer {token}").parse().ok()?,
        })
    }

    /// The token, for `Authorization: Bearer`.
    pub(crate) fn secret(&self) -> &str {
        &self.token
    }

    /// The gRPC call's `authorization` metadata, `Bearer <token>`.
    pub(crate) fn metadata(&self) -> MetadataValue<Ascii> {
        self.metadata.clone()
    }
}

impl PartialEq for PhoneToken {
    fn eq(&self, other: &Self) -> bool {
        self.token == other.token
    }
}

impl fmt::Debug for PhoneToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhoneToken(..)")
    }
}

/// One device credential for each of `persons`, made through the API at
/// `api` with the `organiser`'s token; their tokens, in the order of
/// `persons`.
pub(super) async fn enroll(
    http: &reqwest::Client,
    api: &str,
    organiser: &str,
    persons: &[PersonId],
) -> anyhow::Result<Vec<PhoneToken>> {
    futures::stream::iter(persons.iter().copied())
        .map(|person| enroll_one(http, api, organiser, person))
        .buffered(ENROLLING_AT_ONCE)
        .try_collect()
        .await
}

async fn enroll_one(
    http: &reqwest::Client,
    api: &str,
    organiser: &str,
    person: PersonId,
) -> anyhow::Result<PhoneToken> {
    let url = format!("{api}/api/v2/persons/{person}/credentials");
    let response = http
        .post(&url)
        .bearer_auth(organiser)
        .json(&json!({ "kind": "device", "label": LABEL }))
        .send()
        .await
        .with_context(|| format!("making a phone's token at {url}"))?;
    let status = response.status();
    anyhow::ensure!(
        status == StatusCode::CREATED,
        "making a phone's token at {url}: {status}{}",
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN =>
                " (is UDACONNECT_ORGANISER_TOKEN the API's organiser token?)",
            StatusCode::NOT_FOUND => " (no such person)",
            _ => "",
        }
    );
    let created: serde_json::Value = response
        .json()
        .await
        .with_context(|| format!("reading the phone's token made at {url}"))?;
    created["token"]
        .as_str()
        .and_then(PhoneToken::new)
        .with_context(|| format!("the API at {url} answered no token a phone can send"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phones_token_is_never_shown_by_debug() {
        let token = PhoneToken::new("ucd_abcdefghijklmnop").expect("a token");
        assert_eq!(format!("{token:?}"), "PhoneToken(..)");
        assert_eq!(format!("{:?}", Some(token.clone())), "Some(PhoneToken(..))");
        assert_eq!(token.secret(), "ucd_abcdefghijklmnop");
        assert_eq!(
            token.metadata().to_str().ok(),
            Some("Bearer ucd_abcdefghijklmnop")
        );
    }

    #[test]
    fn only_a_token_that_fits_in_a_header_is_taken() {
        assert!(PhoneToken::new("").is_none());
        assert!(PhoneToken::new("ucd_a b").is_none());
        assert!(PhoneToken::new("ucd_é").is_none());
        assert!(PhoneToken::new(&"a".repeat(257)).is_none());
        assert!(PhoneToken::new(&"a".repeat(256)).is_some());
    }
}
