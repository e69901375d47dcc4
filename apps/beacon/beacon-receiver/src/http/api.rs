//! `GET /api/messages?after=&before=&limit=`: a page of history, oldest first.
//!
//! With `after`, the page is the oldest `limit` messages after it; without,
//! the newest `limit` before `before` (or the newest overall). Messages in
//! the window come from memory, older ones from the stream. `first_seq` and
//! `last_seq` give the range the stream retains (`first_seq > last_seq`
//! when it is empty), so a client knows where to page to and resume from.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use platform::http::{ApiError, ApiQuery};
use serde::Deserialize;

use super::{AppState, resume::parse_seq};
use crate::frame::Frame;

/// Messages per page unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 100;
/// The largest `limit` accepted.
const MAX_LIMIT: usize = 1000;
/// How long to wait for the stream's bounds before using the window's.
const BOUNDS_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    after: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

/// A checked page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PageRequest {
    after: Option<u64>,
    before: Option<u64>,
    limit: usize,
}

impl PageRequest {
    fn parse(query: &PageQuery) -> Result<Self, ApiError> {
        let seq = |name, value: &Option<String>| {
            value
                .as_deref()
                .map(|value| parse_seq(name, value))
                .transpose()
        };
        let after = seq("after", &query.after)?;
        let before = seq("before", &query.before)?;
        let limit = match query.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(limit) => match limit.trim().parse::<usize>() {
                Ok(limit @ 1..=MAX_LIMIT) => limit,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "limit must be a whole number from 1 to {MAX_LIMIT}, got {limit:?}"
                    )));
                }
            },
        };
        if let (Some(after), Some(before)) = (after, before)
            && after >= before
        {
            return Err(ApiError::bad_request(format!(
                "after ({after}) must be less than before ({before})"
            )));
        }
        Ok(Self {
            after,
            before,
            limit,
        })
    }
}

pub async fn messages(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let request = PageRequest::parse(&query)?;
    let receiver = &state.receiver;
    let (window_first, next) = receiver.hub.bounds();
    let until = request.before.unwrap_or(u64::MAX).min(next);
    let from = match request.after {
        Some(after) => after.saturating_add(1),
        None => until
            .saturating_sub(u64::try_from(request.limit).unwrap_or(u64::MAX))
            .max(1),
    };

    let mut frames: Vec<Arc<Frame>> = Vec::with_capacity(request.limit);
    let mut cursor = from;
    let mut window_first = window_first;
    loop {
        let history_until = until.min(window_first);
        while cursor < history_until && frames.len() < request.limit {
            let batch = receiver
                .history
                .read(cursor, history_until, request.limit - frames.len())
                .await
                .map_err(|err| ApiError::unavailable(format!("history is unavailable: {err}")))?;
            frames.extend(batch.frames);
            cursor = batch.next;
        }
        if frames.len() >= request.limit || cursor >= until {
            break;
        }
        let (window, first) = receiver
            .hub
            .range(cursor, until, request.limit - frames.len());
        if first <= cursor {
            frames.extend(window);
            break;
        }
        // The window moved past `cursor` while history was read: what it
        // dropped in between comes from the stream too.
        window_first = first;
    }

    let (first_seq, last_seq) =
        match tokio::time::timeout(BOUNDS_TIMEOUT, receiver.history.bounds()).await {
            Ok(Ok(bounds)) => (bounds.first, bounds.last),
            _ => (window_first, next.saturating_sub(1)),
        };
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        page_json(&frames, first_seq, last_seq),
    )
        .into_response())
}

/// The page, written from each frame's stored JSON without re-encoding.
fn page_json(frames: &[Arc<Frame>], first_seq: u64, last_seq: u64) -> String {
    let size: usize = frames
        .iter()
        .map(|frame| frame.json.as_str().len() + 1)
        .sum();
    let mut body = String::with_capacity(size + 64);
    body.push_str(r#"{"messages":["#);
    for (i, frame) in frames.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(frame.json.as_str());
    }
    body.push_str(&format!(
        r#"],"first_seq":{first_seq},"last_seq":{last_seq}}}"#
    ));
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::frame;

    fn query(after: Option<&str>, before: Option<&str>, limit: Option<&str>) -> PageQuery {
        PageQuery {
            after: after.map(str::to_owned),
            before: before.map(str::to_owned),
            limit: limit.map(str::to_owned),
        }
    }

    #[test]
    fn defaults_and_limits() {
        let request = PageRequest::parse(&query(None, None, None)).expect("valid");
        assert_eq!(request.limit, DEFAULT_LIMIT);
        assert!(PageRequest::parse(&query(None, None, Some("1000"))).is_ok());
        for limit in ["0", "1001", "ten", "-1", ""] {
            let err = PageRequest::parse(&query(None, None, Some(limit))).expect_err(limit);
            assert!(err.message.contains("limit"), "{}", err.message);
        }
    }

    #[test]
    fn after_must_come_before_before() {
        let err = PageRequest::parse(&query(Some("9"), Some("9"), None)).expect_err("empty range");
        assert!(err.message.contains("less than"), "{}", err.message);
        assert!(PageRequest::parse(&query(Some("x"), None, None)).is_err());
    }

    #[test]
    fn the_page_is_valid_json() {
        let frames = vec![Arc::new(frame(3)), Arc::new(frame(4))];
        let value: serde_json::Value =
            serde_json::from_str(&page_json(&frames, 1, 9)).expect("json");
        assert_eq!(value["messages"][1]["seq"], 4);
        assert_eq!(value["first_seq"], 1);
        assert_eq!(value["last_seq"], 9);
        let empty: serde_json::Value = serde_json::from_str(&page_json(&[], 1, 0)).expect("json");
        assert_eq!(empty["messages"], serde_json::json!([]));
    }
}
