//! UdaConnect's HTTP API: the original's endpoints under `/api`, kept
//! exactly ([`compat`]), the v2 endpoints under `/api/v2` ([`v2`], and a
//! person's meetings: [`meetings`], live: [`meetings_live`]; a person's
//! data handed over, [`export`], or erased, [`erasure`]), the OpenAPI
//! document they are described by, generated from the handlers
//! themselves ([`docs`]) so that it cannot drift from the routes, and the
//! page people use ([`page`]).
//!
//! Locations are written through the ingest edge (`crate::ingest`), which
//! serves `POST /api/locations`, `POST /api/v2/locations`,
//! `POST /api/v2/locations:batch` and the phones' apps' endpoints
//! (`/api/v2/owntracks`, `/api/v2/osmand`); a target's document holds
//! exactly the routes it serves, these included when it runs the edge.

pub mod compat;
pub mod compat_wire;
pub mod credentials;
pub mod cursor;
pub mod docs;
pub mod erasure;
pub mod export;
pub mod gate;
pub mod live;
pub mod meetings;
pub mod meetings_live;
pub mod page;
pub mod params;
pub mod qr;
pub mod state;
pub mod v2;
pub mod wire;

use axum::{
    Router,
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use tower_http::cors::CorsLayer;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

pub use self::state::{ApiMetrics, ApiState};

/// The query API's routes (everything but the location writes), documented.
pub fn routes(state: ApiState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(compat::list_persons, compat::create_person))
        .routes(routes!(compat::get_person))
        .routes(routes!(compat::connection))
        .routes(routes!(compat::get_location))
        .routes(routes!(v2::persons, v2::create_person))
        .routes(routes!(v2::person))
        .routes(routes!(v2::person_locations))
        .routes(routes!(v2::connections))
        .routes(routes!(meetings::meetings))
        .routes(routes!(meetings_live::live))
        .routes(routes!(v2::location))
        .routes(routes!(v2::stats))
        .routes(routes!(live::live))
        .routes(routes!(credentials::create, credentials::list))
        .routes(routes!(credentials::revoke))
        .routes(routes!(credentials::me))
        .routes(routes!(export::export))
        .routes(routes!(erasure::erase))
        .with_state(state)
}

/// `routes` (the parts a target serves, merged) with `/api/openapi.json`
/// describing exactly them and `/api/docs`.
pub fn router(routes: OpenApiRouter) -> Router {
    let (router, doc) = OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .merge(routes)
        .split_for_parts();
    // The original answers any origin (its frontend runs on another port);
    // so does this API, which has no cookies or credentials to protect.
    router
        .layer(axum::middleware::map_response(retry_after))
        .layer(CorsLayer::permissive())
        .merge(docs::router(&doc))
}

/// Every 503 of the API says when to retry (the database away, a
/// connection query refused or stopped): in a second, unless the handler
/// said otherwise; every 401 says how to authenticate.
async fn retry_after(mut response: Response) -> Response {
    if response.status() == StatusCode::UNAUTHORIZED
        && !response.headers().contains_key(header::WWW_AUTHENTICATE)
    {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"udaconnect\""),
        );
    }
    if response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(header::RETRY_AFTER)
    {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}
