//! One error shape everywhere: whatever part of the server answers an
//! error (no such route, a method a route does not take, a path that is
//! not UTF-8, a head or a body too large), the client gets
//! `{"error": "..."}` with the status that says what happened.

use serde_json::Value;

use super::helpers::spawn_app;

#[tokio::test]
async fn every_error_is_json_with_its_own_status() {
    let app = spawn_app(&[]).await;
    let big_body = "a".repeat(50 * 1024 * 1024);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "no such route",
            app.http.get(format!("{}/nope", app.base)),
            404,
        ),
        (
            "a method the route does not take",
            app.http.delete(format!("{}/api/persons", app.base)),
            405,
        ),
        (
            "a path that is not UTF-8",
            app.http.get(format!("{}/api/persons/%FF", app.base)),
            400,
        ),
        (
            "a target too long",
            app.http
                .get(format!("{}/api/persons?q={}", app.base, "a".repeat(20_000))),
            414,
        ),
        (
            "headers too large",
            app.http
                .get(format!("{}/api/persons", app.base))
                .header("x-big", "b".repeat(40_000)),
            431,
        ),
        (
            "a 50 MB body",
            app.http
                .post(format!("{}/api/persons", app.base))
                .header("content-type", "application/json")
                .body(big_body),
            413,
        ),
    ];
    for (what, request, expected) in cases {
        let response = request.send().await.expect("answered");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(status, expected, "{what}: {body}");
        assert_eq!(content_type.as_deref(), Some("application/json"), "{what}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|error| !error.is_empty()),
            "{what}: {body}"
        );
    }
    app.stop().await;
}
