//! One error shape for every HTTP answer: `{"error": "..."}`.
//!
//! Handlers answer their own errors as JSON ([`crate::http::ApiError`]),
//! but some are answered before a handler runs: a path no route has (404),
//! a method a route does not take (405), a path segment that is not UTF-8
//! (axum's extractors answer plain text), a request head too large (414,
//! 431). A client that parses every error the same way should not have to
//! know which part of the server answered, so the service's router is
//! wrapped here: heads are checked against [`HeadLimits`] first, and any
//! error response that is not JSON is rewritten as JSON with its text (or
//! its status's reason) as the message. Heads beyond hyper's own limits
//! (64 KiB of target, about 400 KiB in all) are refused by hyper itself,
//! without a body, before any of this runs.

use axum::{
    Router,
    body::Body,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};

use crate::http::ApiError;

/// The most bytes of an error body read to put into the JSON message.
const MESSAGE_BYTES: usize = 4096;

/// How large a request head may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Bytes of the request target (path and query); longer is a 414.
    pub uri: usize,
    /// Bytes of all header names and values; more is a 431.
    pub headers: usize,
}

/// `router` answering every error as JSON, with a JSON 404 and 405 and the
/// head limits checked first.
pub fn json_errors(router: Router, limits: HeadLimits) -> Router {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::map_response(as_json))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            check_head(limits, request, next)
        }))
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!("no route for {}", request.uri().path()))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    }
}

async fn check_head(limits: HeadLimits, request: Request, next: Next) -> Response {
    let uri = request.uri().to_string().len();
    if uri > limits.uri {
        return ApiError {
            status: StatusCode::URI_TOO_LONG,
            message: format!(
                "the request target is {uri} bytes; at most {} are read",
                limits.uri
            ),
        }
        .into_response();
    }
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers > limits.headers {
        return ApiError {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            message: format!(
                "the request's headers are {headers} bytes; at most {} are read",
                limits.headers
            ),
        }
        .into_response();
    }
    next.run(request).await
}

/// An error response that is not JSON, as JSON: its text, or its status's
/// reason when it has none.
async fn as_json(response: Response) -> Response {
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MESSAGE_BYTES)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let body = serde_json::json!({ "error": message }).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use axum::{extract::Path, routing::get};
    use tower::ServiceExt;

    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        uri: 100,
        headers: 200,
    };

    fn app() -> Router {
        json_errors(
            Router::new().route("/things/{id}", get(|Path(id): Path<String>| async { id })),
            LIMITS,
        )
    }

    async fn answer(request: Request) -> (StatusCode, serde_json::Value) {
        let response = app().oneshot(request).await.expect("answered");
        let status = response.status();
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/json",
            "{status}"
        );
        let bytes = axum::body::to_bytes(response.into_body(), 10_000)
            .await
            .expect("a body");
        (status, serde_json::from_slice(&bytes).expect("JSON"))
    }

    fn get_request(uri: &str) -> Request {
        Request::get(uri).body(Body::empty()).expect("a request")
    }

    #[tokio::test]
    async fn every_error_before_a_handler_is_json() {
        let (status, body) = answer(get_request("/nothing")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "no route for /nothing");
        let (status, body) = answer(
            Request::delete("/things/1")
                .body(Body::empty())
                .expect("a request"),
        )
        .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"], "DELETE is not allowed on /things/1");
        let (status, body) = answer(get_request("/things/%FF")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|error| error.contains("UTF-8")),
            "{body}"
        );
        let (status, _) = answer(get_request(&format!("/things/{}", "a".repeat(200)))).await;
        assert_eq!(status, StatusCode::URI_TOO_LONG);
        let (status, _) = answer(
            Request::get("/things/1")
                .header("x-big", "b".repeat(300))
                .body(Body::empty())
                .expect("a request"),
        )
        .await;
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    #[tokio::test]
    async fn answers_that_are_not_errors_are_left_as_they_are() {
        let response = app()
            .oneshot(get_request("/things/7"))
            .await
            .expect("answered");
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(response.into_body(), 100)
            .await
            .expect("a body");
        assert_eq!(&bytes[..], b"7");
    }
}
