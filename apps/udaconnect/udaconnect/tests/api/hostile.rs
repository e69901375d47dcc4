//! The ingest edge against hostile and careless clients: bodies of
//! millions of items, batches of nothing but bad items, times centuries
//! away. A request costs memory bounded by the item limit, not by what the
//! client sends; every rejection names the field the way the client named
//! it, with a kind of problem a program can act on; years outside
//! 1900..=2100 are refused wherever a time comes in.
//!
//! The memory test runs the real `udaconnect ingest` binary and reads its
//! peak resident memory from the kernel around each request.

use bytes::{BufMut, Bytes};
use serde_json::{Value, json};
use testkit::{AppProcess, NatsServer, bench, free_port};
use tonic::{
    Code, Request, Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
};
use tonic_types::StatusExt;
use udaconnect::proto::v1::{
    BatchReply, Location, LocationBatch, LocationInput, ingest_service_client::IngestServiceClient,
    location_service_client::LocationServiceClient,
};

use super::helpers::{PATIENCE, UDACONNECT, metric, spawn_app};

const BATCH: &str = "/api/v2/locations:batch";

fn item(person: i64, lat: f64, time: &str) -> Value {
    json!({"person_id": person, "lat": lat, "lon": 7.0, "time": time})
}

/// `{"locations":[1,1,…` of `count` items, then `tail`.
fn ones_json(count: usize, tail: &str) -> String {
    let mut body = String::from("{\"locations\":[");
    body.push_str(&vec!["1"; count].join(","));
    body.push_str(tail);
    body
}

#[tokio::test]
async fn a_batch_is_refused_at_the_first_item_past_the_limit() {
    let app = spawn_app(&["--ingest-max-batch", "3"]).await;
    // Read no further than the fourth item: what follows it is never
    // looked at, not even whether it is JSON at all.
    for body in [
        ones_json(4, ",{{{ not JSON at all"),
        ones_json(4, "]}"),
        format!(
            "{{\"locations\":[{}]}}",
            (0..4)
                .map(|n| item(1, 45.0, &format!("2021-03-01T10:0{n}:00Z")).to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
    ] {
        let (status, reply) = app.post_raw(BATCH, "application/json", &body).await;
        assert_eq!(status, 413, "{body}: {reply}");
        let error = reply["error"].as_str().expect("an error");
        assert!(error.contains("UDACONNECT_INGEST_MAX_BATCH"), "{error}");
    }
    let (status, reply) = app
        .post_raw(
            BATCH,
            "application/x-ndjson",
            "1\n\n1\n1\n1\nnot even a line of JSON\n",
        )
        .await;
    assert_eq!(status, 413, "{reply}");
    // Three is still a batch.
    let (status, reply) = app
        .post_raw(BATCH, "application/json", &ones_json(3, "]}"))
        .await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["rejected"].as_array().map(Vec::len), Some(3));

    // Over gRPC, one batch and a stream of them alike.
    let mut ingest = IngestServiceClient::connect(app.grpc.clone())
        .await
        .expect("connects");
    let batch = |batch_id: u64, items: usize| LocationBatch {
        batch_id,
        locations: vec![LocationInput::default(); items],
    };
    let refused = ingest
        .ingest_batch(batch(1, 4))
        .await
        .expect_err("too many");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("UDACONNECT_INGEST_MAX_BATCH"),
        "{refused:?}"
    );
    let mut replies = ingest
        .ingest(futures::stream::iter([
            batch(1, 3),
            batch(2, 4),
            batch(3, 1),
        ]))
        .await
        .expect("a stream")
        .into_inner();
    let first = replies
        .message()
        .await
        .expect("a reply")
        .expect("not ended");
    assert_eq!((first.batch_id, first.rejected_count), (1, 3));
    let refused = replies.message().await.expect_err("too many");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    app.stop().await;
}

#[tokio::test]
async fn rejections_past_the_first_hundred_are_counted_not_listed() {
    let app = spawn_app(&["--ingest-max-batch", "1000"]).await;
    let good = item(1, 45.0, "2021-03-01T10:00:00Z");
    let mut items = vec![good.clone()];
    items.extend(std::iter::repeat_n(json!(1), 249));
    let (status, reply) = app.post(BATCH, &json!({ "locations": items })).await;
    assert_eq!(status, 207, "{reply}");
    assert_eq!(reply["accepted"], 1);
    let listed = reply["rejected"].as_array().expect("rejected");
    assert_eq!(listed.len(), 100, "{reply}");
    assert_eq!(reply["rejected_count"], 249, "{reply}");
    assert_eq!(
        (listed[0]["index"].as_u64(), listed[99]["index"].as_u64()),
        (Some(1), Some(100))
    );

    let mut lines = vec![good.to_string()];
    lines.extend(std::iter::repeat_n("[]".to_owned(), 150));
    let (status, reply) = app
        .post_raw(BATCH, "application/x-ndjson", &lines.join("\n"))
        .await;
    assert_eq!(status, 207, "{reply}");
    assert_eq!(reply["rejected"].as_array().map(Vec::len), Some(100));
    assert_eq!(reply["rejected_count"], 150, "{reply}");

    let mut ingest = IngestServiceClient::connect(app.grpc.clone())
        .await
        .expect("connects");
    let input = |lat: f64| LocationInput {
        person_id: 1,
        lat,
        lon: 7.0,
        time: "2021-03-01T11:00:00Z".into(),
        key: String::new(),
    };
    let mut locations = vec![input(45.0)];
    locations.extend((0..120).map(|_| input(95.0)));
    let reply = ingest
        .ingest_batch(LocationBatch {
            batch_id: 1,
            locations,
        })
        .await
        .expect("answered")
        .into_inner();
    assert_eq!((reply.accepted, reply.rejected.len()), (1, 100));
    assert_eq!(reply.rejected_count, 120);
    let mut replies = ingest
        .ingest(futures::stream::iter([LocationBatch {
            batch_id: 2,
            locations: (0..150).map(|_| input(-95.0)).collect(),
        }]))
        .await
        .expect("a stream")
        .into_inner();
    let reply = replies
        .message()
        .await
        .expect("a reply")
        .expect("not ended");
    assert_eq!(
        (reply.accepted, reply.rejected.len(), reply.rejected_count),
        (0, 100, 150)
    );
    app.stop().await;
}

/// The `field` and `problem` of a single-location write's 400.
fn named(answer: &Value) -> (&str, &str) {
    (
        answer["field"].as_str().unwrap_or_default(),
        answer["problem"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_rejection_names_the_field_as_the_client_sent_it_and_its_problem() {
    let app = spawn_app(&[]).await;
    let future = "2099-01-01T00:00:00";

    // Over HTTP: the batch's items, the v2 write, the original's write.
    let batch = json!({"locations": [
        item(1, 91.0, "2021-03-01T10:00:00Z"),
        item(1, 45.0, &format!("{future}Z")),
        {"person_id": 1, "lat": "north", "lon": 7.0, "time": "2021-03-01T10:00:00Z"},
        {"person_id": 1, "lat": 45.0, "time": "2021-03-01T10:00:00Z"},
        {"person_id": 1, "lat": 45.0, "lon": 7.0, "time": "2021-03-01T10:00:00Z", "extra": 1},
        item(99_999, 45.0, "2021-03-01T10:00:00Z"),
    ]});
    let (status, reply) = app.post(BATCH, &batch).await;
    assert_eq!(status, 400, "{reply}");
    let rejected: Vec<(&str, &str)> = reply["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            (
                r["field"].as_str().unwrap_or_default(),
                r["problem"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            ("lat", "out_of_range"),
            ("time", "in_future"),
            ("lat", "malformed"),
            ("lon", "missing"),
            ("location", "unknown_field"),
            ("person_id", "unknown"),
        ],
        "{reply}"
    );
    let (status, answer) = app
        .post(
            "/api/v2/locations",
            &json!({"person_id": 1, "lat": 45.0, "lon": 7.0, "time": format!("{future}Z")}),
        )
        .await;
    assert_eq!(
        (status, named(&answer)),
        (400, ("time", "in_future")),
        "{answer}"
    );
    let (status, answer) = app
        .post(
            "/api/locations",
            &json!({"person_id": 1, "latitude": "7", "longitude": "45", "creation_time": future}),
        )
        .await;
    assert_eq!(
        (status, named(&answer)),
        (400, ("creation_time", "in_future")),
        "{answer}"
    );
    let error = answer["error"].as_str().expect("an error");
    assert!(error.starts_with("creation_time: "), "{error}");
    // `latitude` is the point's X, the longitude: out of range past 180.
    let (status, answer) = app
        .post(
            "/api/locations",
            &json!({"person_id": 1, "latitude": "181", "longitude": "45"}),
        )
        .await;
    assert_eq!(
        (status, named(&answer)),
        (400, ("latitude", "out_of_range")),
        "{answer}"
    );

    // Over gRPC: the original's message has `creation_time`, not `time`.
    let mut unary = LocationServiceClient::connect(app.grpc.clone())
        .await
        .expect("connects");
    let create = |latitude: &str, creation_time: &str| Location {
        id: 0,
        person_id: 1,
        latitude: latitude.into(),
        longitude: "45".into(),
        creation_time: creation_time.into(),
    };
    for (location, field, reason) in [
        (create("7", future), "creation_time", "IN_FUTURE"),
        (create("7", "noon"), "creation_time", "MALFORMED"),
        (create("west", ""), "latitude", "MALFORMED"),
        (create("-181", ""), "latitude", "OUT_OF_RANGE"),
    ] {
        let refused = unary.create(location).await.expect_err("refused");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        let details = refused.get_error_details();
        let violation = &details
            .bad_request()
            .expect("a BadRequest")
            .field_violations[0];
        assert_eq!(
            (violation.field.as_str(), violation.reason.as_str()),
            (field, reason),
            "{refused:?}"
        );
        assert!(refused.message().starts_with(field), "{refused:?}");
    }
    let mut ingest = IngestServiceClient::connect(app.grpc.clone())
        .await
        .expect("connects");
    let reply = ingest
        .ingest_batch(LocationBatch {
            batch_id: 1,
            locations: vec![LocationInput {
                person_id: 1,
                lat: 45.0,
                lon: 7.0,
                time: format!("{future}Z"),
                key: "k".repeat(129),
            }],
        })
        .await
        .expect("answered")
        .into_inner();
    let rejected = &reply.rejected[0];
    assert_eq!(
        (rejected.field.as_str(), rejected.problem.as_str()),
        ("time", "in_future")
    );

    // Counted by field and problem, whatever the words of the message.
    for (transport, field, problem, count) in [
        ("http", "time", "in_future", 3.0),
        ("http", "lat", "out_of_range", 1.0),
        ("http", "lon", "out_of_range", 1.0),
        ("http", "person_id", "unknown", 1.0),
        ("grpc", "time", "in_future", 2.0),
        ("grpc", "lon", "malformed", 1.0),
    ] {
        let sample = format!(
            "udaconnect_ingest_rejected_total{{transport=\"{transport}\",field=\"{field}\",problem=\"{problem}\"}}"
        );
        assert_eq!(metric(&app, &sample).await, Some(count), "{sample}");
    }
    app.stop().await;
}

#[tokio::test]
async fn years_before_1900_or_after_2100_are_refused() {
    let app = spawn_app(&["--ingest-max-future", "100000d"]).await;
    for time in [
        "0000-01-01T00:00:00Z",
        "1899-12-31T23:59:59Z",
        "2101-01-01T00:00:00Z",
    ] {
        let (status, reply) = app
            .post(BATCH, &json!({"locations": [item(1, 45.0, time)]}))
            .await;
        assert_eq!(status, 400, "{time}: {reply}");
        let rejected = &reply["rejected"][0];
        assert_eq!(
            (rejected["field"].as_str(), rejected["problem"].as_str()),
            (Some("time"), Some("out_of_range")),
            "{time}: {reply}"
        );
        let (status, answer) = app
            .post(
                "/api/v2/locations",
                &json!({"person_id": 1, "lat": 45.0, "lon": 7.0, "time": time}),
            )
            .await;
        assert_eq!(
            (status, named(&answer)),
            (400, ("time", "out_of_range")),
            "{answer}"
        );
        let naive = time.trim_end_matches('Z');
        let (status, answer) = app
            .post(
                "/api/locations",
                &json!({"person_id": 1, "latitude": "7", "longitude": "45", "creation_time": naive}),
            )
            .await;
        assert_eq!(
            (status, named(&answer)),
            (400, ("creation_time", "out_of_range")),
            "{answer}"
        );
    }
    // The edges of the range are taken.
    let (status, reply) = app
        .post(
            BATCH,
            &json!({"locations": [item(1, 45.0, "1900-01-01T00:00:00Z"), item(1, 45.0, "2100-12-31T23:59:59Z")]}),
        )
        .await;
    assert_eq!((status, &reply["accepted"]), (200, &json!(2)), "{reply}");

    let mut unary = LocationServiceClient::connect(app.grpc.clone())
        .await
        .expect("connects");
    let refused = unary
        .create(Location {
            id: 0,
            person_id: 1,
            latitude: "7".into(),
            longitude: "45".into(),
            creation_time: "0000-01-01T00:00:00".into(),
        })
        .await
        .expect_err("year 0");
    let details = refused.get_error_details();
    let violation = &details
        .bad_request()
        .expect("a BadRequest")
        .field_violations[0];
    assert_eq!(violation.field, "creation_time", "{refused:?}");

    // Queries, both APIs: each bound named.
    for (path, named) in [
        (
            "/api/v2/persons/1/locations?start=0000-01-01&end=2020-01-01",
            "start",
        ),
        (
            "/api/v2/persons/1/locations?start=2020-01-01&end=2101-01-01",
            "end",
        ),
        (
            "/api/v2/persons/1/locations?start=1899-12-31T23:59:59Z&end=2020-01-01",
            "start",
        ),
        (
            "/api/v2/persons/1/connections?start=2020-01-01&end=2101-01-01T00:00:00Z",
            "end",
        ),
        (
            "/api/persons/1/connection?start_date=1899-12-31&end_date=2020-01-01",
            "start_date",
        ),
        (
            "/api/persons/1/connection?start_date=2020-01-01&end_date=2101-01-01",
            "end_date",
        ),
        (
            "/api/persons/1/connection?start_date=0000-01-01&end_date=2020-01-01",
            "start_date",
        ),
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        let error = body["error"].as_str().expect("an error");
        assert!(error.starts_with(&format!("{named}: ")), "{path}: {error}");
        assert!(error.contains("1900"), "{path}: {error}");
    }
    let (status, body) = app
        .get("/api/v2/persons/1/locations?start=1900-01-01&end=2100-12-31T23:59:59Z")
        .await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

/// Sends an encoded `LocationBatch` as it is, however large.
#[derive(Clone, Default)]
struct RawBatch;

struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

struct ReplyDecoder;

impl Decoder for ReplyDecoder {
    type Item = BatchReply;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<BatchReply>, Status> {
        prost::Message::decode(src)
            .map(Some)
            .map_err(|err| Status::internal(err.to_string()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

impl Codec for RawBatch {
    type Encode = Bytes;
    type Decode = BatchReply;
    type Encoder = RawEncoder;
    type Decoder = ReplyDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ReplyDecoder {
        ReplyDecoder
    }
}

/// The edge under test: `udaconnect ingest`, its peak memory read by the
/// kernel. The database is never reached by these requests (they are
/// refused before any person is looked up), so it points nowhere.
struct Edge {
    process: AppProcess,
    grpc: String,
    http: reqwest::Client,
}

/// One request and what it cost the edge: status, and the rise of its
/// peak resident memory above what it held before, in bytes.
struct Cost {
    status: u16,
    reply: String,
    rise: u64,
}

impl Edge {
    async fn start(nats: &NatsServer) -> Self {
        let grpc_port = free_port();
        let envs = [
            ("NATS_URL", nats.url()),
            (
                "DATABASE_URL",
                format!("postgres://nobody@127.0.0.1:{}/nowhere", free_port()),
            ),
            ("UDACONNECT_MIGRATE", "false".to_owned()),
            ("UDACONNECT_GRPC_ADDR", format!("127.0.0.1:{grpc_port}")),
            // The memory measured, not the tokens: no token needed.
            ("UDACONNECT_OPEN_API", "true".to_owned()),
        ];
        let process = tokio::task::spawn_blocking(move || {
            AppProcess::spawn(
                std::path::Path::new(UDACONNECT),
                "UDACONNECT",
                &["ingest"],
                &envs,
            )
        })
        .await
        .expect("the edge");
        Self {
            process,
            grpc: format!("http://127.0.0.1:{grpc_port}"),
            http: reqwest::Client::builder()
                .timeout(PATIENCE * 4)
                .build()
                .expect("an HTTP client"),
        }
    }

    /// Resets the peak to what the edge holds now: the rise measured
    /// after is this request's, whatever the earlier ones left behind.
    fn baseline(&self) -> u64 {
        let pid = self.process.pid();
        bench::reset_peak_rss(pid).expect("reset the peak");
        bench::peak_rss_kb(pid).expect("the peak")
    }

    fn rise_since(&self, before_kb: u64) -> u64 {
        let peak = bench::peak_rss_kb(self.process.pid()).expect("the peak");
        peak.saturating_sub(before_kb) * 1024
    }

    async fn post(&self, content_type: &str, body: Vec<u8>) -> Cost {
        let before = self.baseline();
        let response = self
            .http
            .post(format!("{}{BATCH}", self.process.base_url()))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("answered");
        let status = response.status().as_u16();
        let reply = response.text().await.expect("a body");
        Cost {
            status,
            reply,
            rise: self.rise_since(before),
        }
    }

    async fn grpc_batch(&self, encoded: Bytes) -> (Result<BatchReply, Status>, u64) {
        let channel = Channel::from_shared(self.grpc.clone())
            .expect("a URL")
            .connect_timeout(PATIENCE)
            .connect()
            .await
            .expect("connects");
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.expect("ready");
        let before = self.baseline();
        let reply = grpc
            .unary(
                Request::new(encoded),
                tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/udaconnect.v1.IngestService/IngestBatch",
                ),
                RawBatch,
            )
            .await
            .map(tonic::Response::into_inner);
        (reply, self.rise_since(before))
    }
}

/// The default `UDACONNECT_INGEST_MAX_BODY`, and the gRPC message limit.
const MAX_BODY: usize = 16 * 1024 * 1024;
const MB: u64 = 1024 * 1024;

/// `len` bytes of NDJSON lines `1`.
fn ndjson_ones(len: usize) -> Vec<u8> {
    b"1\n".repeat(len / 2)
}

/// `{"locations":[1,1,…]}`, at most `len` bytes (`2 n + 15` for `n` items).
fn json_ones(len: usize) -> Vec<u8> {
    ones_json((len - 15) / 2, "]}").into_bytes()
}

/// Valid items, many more than the item limit, at most `len` bytes.
fn json_valid(len: usize) -> Vec<u8> {
    let one = item(1, 45.0, "2021-03-01T10:00:00Z").to_string();
    let count = (len - 15) / (one.len() + 1);
    format!("{{\"locations\":[{}]}}", vec![one; count].join(",")).into_bytes()
}

#[tokio::test]
async fn the_edges_memory_is_bounded_by_the_item_limit_not_by_the_body() {
    let nats = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .expect("nats-server");
    let ndjson = "application/x-ndjson";
    let json = "application/json";
    let cases: [(&str, &str, Vec<u8>); 5] = [
        (
            "NDJSON of `1` lines, 2 MB",
            ndjson,
            ndjson_ones(2 * 1024 * 1024),
        ),
        ("JSON [1,1,…], 2 MB", json, json_ones(2 * 1024 * 1024)),
        (
            "NDJSON of `1` lines, the largest body",
            ndjson,
            ndjson_ones(MAX_BODY),
        ),
        ("JSON [1,1,…], the largest body", json, json_ones(MAX_BODY)),
        (
            "valid items past the item limit",
            json,
            json_valid(MAX_BODY),
        ),
    ];
    for (what, content_type, body) in cases {
        let len = body.len() as u64;
        assert!(len <= MAX_BODY as u64, "{what}: {len} bytes");
        // An edge of its own: memory an earlier request freed, kept by
        // the allocator, would hide what this one takes.
        let edge = Edge::start(&nats).await;
        let cost = edge.post(content_type, body).await;
        eprintln!(
            "{what}: {len} bytes, answered {}, peak memory +{:.1} MB",
            cost.status,
            cost.rise as f64 / MB as f64
        );
        assert_eq!(cost.status, 413, "{what}: {}", cost.reply);
        assert!(
            cost.reply.contains("UDACONNECT_INGEST_MAX_BATCH"),
            "{what}: {}",
            cost.reply
        );
        assert!(
            cost.rise <= 3 * len,
            "{what}: the edge's peak memory rose by {} MB for a body of {} MB",
            cost.rise / MB,
            len / MB
        );
        if len <= 2 * MB {
            assert!(cost.rise < 20 * MB, "{what}: +{} MB", cost.rise / MB);
        }
    }

    // gRPC: a message as large as the edge takes, of empty items (two
    // bytes each on the wire, some 70 once decoded).
    let mut encoded = Vec::with_capacity(MAX_BODY);
    encoded.extend_from_slice(&[0x08, 0x01]);
    while encoded.len() + 2 <= MAX_BODY {
        encoded.extend_from_slice(&[0x12, 0x00]);
    }
    let len = encoded.len() as u64;
    let edge = Edge::start(&nats).await;
    let (reply, rise) = edge.grpc_batch(Bytes::from(encoded)).await;
    eprintln!(
        "gRPC batch of {} empty items: {len} bytes, peak memory +{:.1} MB",
        (len - 2) / 2,
        rise as f64 / MB as f64
    );
    let refused = reply.expect_err("too many items");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("UDACONNECT_INGEST_MAX_BATCH"),
        "{refused:?}"
    );
    assert!(
        rise <= 3 * len,
        "gRPC: +{} MB for {} MB",
        rise / MB,
        len / MB
    );
}
