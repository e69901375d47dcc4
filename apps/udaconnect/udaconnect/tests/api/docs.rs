//! The OpenAPI document describes exactly the routes that exist.

use std::collections::BTreeSet;

use serde_json::Value;

use super::helpers::{spawn_app, spawn_target};

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("operations")
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect()
}

/// Every operation `udaconnect all` serves.
const OPERATIONS: [(&str, &str); 25] = [
    ("get", "/api/persons"),
    ("post", "/api/persons"),
    ("get", "/api/persons/{person_id}"),
    ("get", "/api/persons/{person_id}/connection"),
    ("post", "/api/locations"),
    ("get", "/api/locations/{location_id}"),
    ("get", "/api/v2/persons"),
    ("post", "/api/v2/persons"),
    ("get", "/api/v2/persons/{person_id}"),
    ("delete", "/api/v2/persons/{person_id}"),
    ("get", "/api/v2/persons/{person_id}/export"),
    ("get", "/api/v2/persons/{person_id}/locations"),
    ("get", "/api/v2/persons/{person_id}/meetings"),
    ("get", "/api/v2/persons/{person_id}/meetings/live"),
    ("get", "/api/v2/persons/{person_id}/connections"),
    ("post", "/api/v2/locations"),
    ("post", "/api/v2/locations:batch"),
    ("get", "/api/v2/locations/{location_id}"),
    ("post", "/api/v2/persons/{person_id}/credentials"),
    ("get", "/api/v2/persons/{person_id}/credentials"),
    ("delete", "/api/v2/credentials/{credential_id}"),
    ("get", "/api/v2/me"),
    ("post", "/api/v2/owntracks"),
    ("get", "/api/v2/osmand"),
    ("post", "/api/v2/osmand"),
];

/// The location writes, served by the ingest edge.
const WRITES: [(&str, &str); 6] = [
    ("post", "/api/locations"),
    ("post", "/api/v2/locations"),
    ("post", "/api/v2/locations:batch"),
    ("post", "/api/v2/owntracks"),
    ("get", "/api/v2/osmand"),
    ("post", "/api/v2/osmand"),
];

#[tokio::test]
async fn the_document_lists_exactly_the_routes_and_each_is_served() {
    let app = spawn_app(&[]).await;
    let (status, doc) = app.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|version| version.starts_with("3."))
    );
    let documented = operations(&doc);
    let mut expected: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    expected.insert(("get".to_owned(), "/api/v2/stats".to_owned()));
    expected.insert(("get".to_owned(), "/api/v2/live".to_owned()));
    assert_eq!(documented, expected);
    // Each says who may call it.
    for (method, path) in &documented {
        let description = doc["paths"][path][method]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            description.contains("**Who may call:**"),
            "{method} {path} does not say who may call it: {description:?}"
        );
    }

    // Each documented operation is routed: never a 404 or 405 from the
    // router (a 404 JSON error for a missing record is an answer).
    for (method, path) in &documented {
        let concrete = path
            .replace("{person_id}", "1")
            .replace("{location_id}", "1")
            .replace("{credential_id}", "1");
        let request = match method.as_str() {
            "get" => app.http.get(format!("{}{concrete}", app.base)),
            // Someone who is not there: the demo's persons stay for the
            // other requests.
            "delete" => app.http.delete(format!(
                "{}{}",
                app.base,
                path.replace("{person_id}", "999999")
                    .replace("{credential_id}", "999999")
            )),
            "post" => app
                .http
                .post(format!("{}{concrete}", app.base))
                .header("content-type", "application/json")
                .body("{}"),
            other => panic!("unexpected method {other}"),
        };
        let response = request.send().await.expect("sent");
        let status = response.status().as_u16();
        if path.ends_with("/live") {
            // An endless stream: its head says enough.
            assert_eq!(status, 200);
            assert_eq!(response.headers()["content-type"], "text/event-stream");
            continue;
        }
        let body = response.text().await.expect("a body");
        assert_ne!(status, 405, "{method} {path}");
        assert!(
            status != 404 || body.contains("not found"),
            "{method} {path} is not routed: {status} {body}"
        );
    }

    let page = app
        .http
        .get(format!("{}/api/docs", app.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("/api/openapi.json"));
    assert!(
        !html.contains("https://"),
        "the docs page fetches nothing from the internet"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_api_target_documents_and_serves_no_location_writes() {
    let app = spawn_target("api", &[]).await;
    let (status, doc) = app.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    let documented = operations(&doc);
    let expected: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .filter(|operation| !WRITES.contains(operation))
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .chain([
            ("get".to_owned(), "/api/v2/stats".to_owned()),
            ("get".to_owned(), "/api/v2/live".to_owned()),
        ])
        .collect();
    assert_eq!(documented, expected);
    for (method, path) in WRITES {
        let url = format!("{}{path}", app.base);
        let request = match method {
            "get" => app.http.get(url),
            _ => app
                .http
                .post(url)
                .header("content-type", "application/json")
                .body("{}"),
        };
        let response = request.send().await.expect("sent");
        assert!(
            matches!(response.status().as_u16(), 404 | 405),
            "{method} {path} is served by `api`: {}",
            response.status()
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn parameters_the_handlers_require_are_required_in_the_document() {
    let app = spawn_app(&[]).await;
    let (_, doc) = app.get("/api/openapi.json").await;
    for (path, names, query) in [
        (
            "/api/persons/{person_id}/connection",
            ["start_date", "end_date"],
            "start_date=2020-06-08&end_date=2020-06-09&distance=1",
        ),
        (
            "/api/v2/persons/{person_id}/connections",
            ["start", "end"],
            "start=2020-06-08&end=2020-06-09&distance=1",
        ),
    ] {
        let parameters = doc["paths"][path]["get"]["parameters"]
            .as_array()
            .expect("parameters");
        for name in names {
            let parameter = parameters
                .iter()
                .find(|parameter| parameter["name"] == name)
                .unwrap_or_else(|| panic!("{path}: no {name}"));
            assert_eq!(parameter["required"], true, "{path}: {name}");
            // And the handler does require it.
            let without: Vec<&str> = query
                .split('&')
                .filter(|pair| !pair.starts_with(&format!("{name}=")))
                .collect();
            let url = format!("{}?{}", path.replace("{person_id}", "1"), without.join("&"));
            let (status, body) = app.get(&url).await;
            assert_eq!(status, 400, "{url}: {body}");
            assert!(
                body["error"]
                    .as_str()
                    .is_some_and(|error| error.contains(name)),
                "{url}: {body}"
            );
        }
    }
    app.stop().await;
}
