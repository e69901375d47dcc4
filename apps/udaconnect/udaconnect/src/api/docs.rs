//! `/api/openapi.json`, the OpenAPI 3 document generated from the handlers,
//! and `/api/docs`, a page that renders it without fetching anything from
//! the internet.

use axum::{Router, http::header, response::IntoResponse, routing::get};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};

/// The document's fixed parts; the paths come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "UdaConnect API",
        description = "Persons at a conference, where their phones were, and who was near whom.\n\n\
            `/api/...` is the original UdaConnect API, kept exactly: its `latitude` is the point's X \
            (in its data, the longitude) and `longitude` its Y. `/api/v2/...` names positions `lat`/`lon`, \
            pages every list, and answers connections one entry per person."
    ),
    tags(
        (name = "original", description = "The original UdaConnect API, unchanged for its clients"),
        (name = "v2", description = "Connections summarised per person, cursors, RFC 3339 times"),
        (name = "ingest", description = "Many locations at once, answered once they are on the bus (also over gRPC: proto/udaconnect.proto)"),
        (name = "access", description = "Attendees' links and phones' tokens: made by the organiser, shown once, revocable"),
        (name = "phones", description = "The phones' own apps, taken as they send: OwnTracks (HTTP mode) and Traccar Client (OsmAnd protocol), each with a device's token"),
    ),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

/// The token every call but the page, the docs and health may need:
/// `Authorization: Bearer <token>` (or `?access_token=` where a client
/// cannot set headers); and a device's token as the phones' apps send it.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The organiser's token, an attendee's link's token or a device's token. \
                         With UDACONNECT_OPEN_API on, no token is needed.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "owntracks",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "OwnTracks' Identification: any user name, and a device's token as the password.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "osmand",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "id",
                "Traccar Client's device identifier: a device's token (also as `deviceid`, or JSON `device_id`).",
            ))),
        );
    }
}

const PAGE: &str = include_str!("../../assets/docs.html");

/// Serves the document and its page.
pub fn router(doc: &utoipa::openapi::OpenApi) -> Router {
    // Encoded once: the document does not change while the process runs.
    let json = doc.to_json().unwrap_or_else(|err| {
        tracing::error!(error = %err, "cannot encode the OpenAPI document");
        "{}".to_owned()
    });
    Router::new()
        .route(
            "/api/openapi.json",
            get(move || {
                let json = json.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], json) }
            }),
        )
        .route(
            "/api/docs",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                        (header::CACHE_CONTROL, "no-cache"),
                    ],
                    PAGE,
                )
                    .into_response()
            }),
        )
}
