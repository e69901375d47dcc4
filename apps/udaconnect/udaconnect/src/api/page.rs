//! The page: plain HTML, CSS and JavaScript compiled into the binary, served
//! at `/` (no CDN, no build step, nothing fetched from the internet).

use axum::{Router, http::header, response::IntoResponse, routing::get};

const INDEX: &str = include_str!("../../assets/index.html");
const SCRIPT: &str = include_str!("../../assets/app.js");
const STYLE: &str = include_str!("../../assets/style.css");

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// `/`: the page.
pub fn index() -> Router {
    Router::new().route(
        "/",
        get(|| async { asset("text/html; charset=utf-8", INDEX) }),
    )
}

/// `/assets/app.js` and `/assets/style.css`: what the page loads.
pub fn assets() -> Router {
    Router::new()
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}
