//! Where a client resumes: `Last-Event-ID` or `?after=`, both a sequence.

use axum::http::HeaderMap;
use platform::http::ApiError;
use serde::Deserialize;

/// `?after=<seq>`, the only parameter of `/events` and `/ws`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeQuery {
    after: Option<String>,
}

/// Parses a sequence number given by a client.
pub fn parse_seq(name: &str, value: &str) -> Result<u64, ApiError> {
    value.trim().parse::<u64>().map_err(|_| {
        ApiError::bad_request(format!(
            "{name} must be a message sequence (a whole number ≥ 0), got {value:?}"
        ))
    })
}

/// The sequence to resume after: the `Last-Event-ID` header (sent by a
/// reconnecting `EventSource`, newer than the URL it reconnects to), else
/// `?after=`; `None` to start live.
pub fn resume_point(headers: &HeaderMap, query: &ResumeQuery) -> Result<Option<u64>, ApiError> {
    if let Some(value) = headers.get("last-event-id") {
        let value = value
            .to_str()
            .map_err(|_| ApiError::bad_request("Last-Event-ID must be a message sequence"))?;
        if !value.trim().is_empty() {
            return parse_seq("Last-Event-ID", value).map(Some);
        }
    }
    query
        .after
        .as_deref()
        .map(|after| parse_seq("after", after))
        .transpose()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn query(after: Option<&str>) -> ResumeQuery {
        ResumeQuery {
            after: after.map(str::to_owned),
        }
    }

    #[test]
    fn the_header_wins_over_the_query() {
        let mut headers = HeaderMap::new();
        headers.insert("last-event-id", HeaderValue::from_static("42"));
        assert_eq!(resume_point(&headers, &query(Some("7"))), Ok(Some(42)));
        assert_eq!(
            resume_point(&HeaderMap::new(), &query(Some("7"))),
            Ok(Some(7))
        );
        assert_eq!(resume_point(&HeaderMap::new(), &query(None)), Ok(None));
    }

    #[test]
    fn an_empty_header_is_no_resume_point() {
        let mut headers = HeaderMap::new();
        headers.insert("last-event-id", HeaderValue::from_static(""));
        assert_eq!(resume_point(&headers, &query(None)), Ok(None));
    }

    #[test]
    fn bad_values_are_named() {
        let err = resume_point(&HeaderMap::new(), &query(Some("-1"))).expect_err("refused");
        assert!(err.message.contains("after"), "{}", err.message);
        let mut headers = HeaderMap::new();
        headers.insert("last-event-id", HeaderValue::from_static("abc"));
        let err = resume_point(&headers, &query(None)).expect_err("refused");
        assert!(err.message.contains("Last-Event-ID"), "{}", err.message);
    }
}
