//! UdaConnect's HTTP API: the original's endpoints under `/api`, kept
//! exactly ([`compat`]), the v2 endpoints under `/api/v2` ([`v2`]), the
//! OpenAPI document both are described by, generated from the handlers
//! themselves ([`docs`]) so that it cannot drift from the routes, and the
//! page people use ([`page`]).

pub mod compat;
pub mod compat_wire;
pub mod cursor;
pub mod docs;
pub mod live;
pub mod page;
pub mod params;
pub mod state;
pub mod v2;
pub mod wire;

use axum::Router;
use tower_http::cors::CorsLayer;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

pub use self::state::{ApiMetrics, ApiState};

/// The API's routes, and the OpenAPI document describing exactly them.
pub fn routes(state: ApiState) -> (Router, utoipa::openapi::OpenApi) {
    let (compat, doc) = OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .routes(routes!(compat::list_persons, compat::create_person))
        .routes(routes!(compat::get_person))
        .routes(routes!(compat::connection))
        .routes(routes!(compat::create_location))
        .routes(routes!(compat::get_location))
        .routes(routes!(v2::persons, v2::create_person))
        .routes(routes!(v2::person))
        .routes(routes!(v2::person_locations))
        .routes(routes!(v2::connections))
        .routes(routes!(v2::create_location))
        .routes(routes!(v2::location))
        .routes(routes!(v2::stats))
        .routes(routes!(live::live))
        .with_state(state)
        .split_for_parts();
    // The original answers any origin (its frontend runs on another port);
    // so does this API, which has no cookies or credentials to protect.
    let router = compat.layer(CorsLayer::permissive());
    (router, doc)
}

/// The API's routes with `/api/openapi.json`, `/api/docs` and the page.
pub fn router(state: ApiState) -> Router {
    let (api, doc) = routes(state);
    api.merge(docs::router(&doc)).merge(page::router())
}
