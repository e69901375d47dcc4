//! The edge's gRPC server within the platform's limits, over real
//! connections: silent connections, calls whose client sends nothing,
//! idle connections and clients that do not answer pings are closed, each
//! counted by its limit; beyond the connection cap a connection is closed
//! while HTTP health answers; bad messages get the status codes a client
//! can act on; reflection (both versions) and health cover every service.
//!
//! Raw HTTP/2 is written by hand here (a few frames, headers as HPACK
//! literals) to be the clients real libraries never are.

use std::net::SocketAddr;

use bytes::{Buf, BufMut};
use prost::Message as _;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic::{
    Code,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use udaconnect::proto::v1::{
    BatchReply, LocationBatch, LocationInput, ingest_service_client::IngestServiceClient,
};

use super::helpers::{PATIENCE, TestApp, metric, spawn_app};

/// What an HTTP/2 client sends first.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

/// One HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a small frame");
    let mut frame = len.to_be_bytes()[1..].to_vec();
    frame.extend([kind, flags]);
    frame.extend(stream.to_be_bytes());
    frame.extend(payload);
    frame
}

/// The headers of a gRPC call to `path` on stream 1, as HPACK literals
/// (never indexed, no Huffman).
fn call_headers(path: &str) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        block.push(0x00);
        for text in [name, value] {
            block.push(u8::try_from(text.len()).expect("short"));
            block.extend(text.as_bytes());
        }
    }
    frame(HEADERS, END_HEADERS, 1, &block)
}

/// `message` as a gRPC message on stream 1.
fn call_data(message: &[u8], flags: u8) -> Vec<u8> {
    let mut framed = vec![0];
    framed.extend(u32::try_from(message.len()).expect("small").to_be_bytes());
    framed.extend(message);
    frame(DATA, flags, 1, &framed)
}

/// A raw HTTP/2 client.
struct Raw {
    stream: TcpStream,
    /// Whether it answers the server's settings and pings.
    answers: bool,
}

/// A frame as read: kind, flags, stream and payload.
type Frame = (u8, u8, u32, Vec<u8>);

impl Raw {
    /// A TCP connection that sends nothing (it answers nothing either).
    async fn connect(app: &TestApp) -> Self {
        let stream = TcpStream::connect(grpc_addr(app)).await.expect("connects");
        Self {
            stream,
            answers: false,
        }
    }

    /// A connection that has sent the preface and its settings, and
    /// answers the server's.
    async fn handshake(app: &TestApp) -> Self {
        let mut raw = Self::connect(app).await;
        raw.answers = true;
        raw.send(PREFACE).await;
        raw.send(&frame(SETTINGS, 0, 0, &[])).await;
        raw
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("sent");
    }

    /// The next frame; `None` once the server has closed the connection.
    async fn next_frame(&mut self) -> Option<Frame> {
        let mut head = [0u8; 9];
        self.stream.read_exact(&mut head).await.ok()?;
        let len = usize::try_from(u32::from_be_bytes([0, head[0], head[1], head[2]])).ok()?;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0; len];
        self.stream.read_exact(&mut payload).await.ok()?;
        if self.answers && head[4] & ACK == 0 {
            let answer = match head[3] {
                PING => Some(frame(PING, ACK, 0, &payload)),
                SETTINGS => Some(frame(SETTINGS, ACK, 0, &[])),
                _ => None,
            };
            if let Some(answer) = answer {
                let _ = self.stream.write_all(&answer).await;
            }
        }
        Some((head[3], head[4], stream, payload))
    }

    /// Every frame until the server closes the connection, which it must
    /// within [`PATIENCE`].
    async fn until_closed(&mut self, what: &str) -> Vec<Frame> {
        tokio::time::timeout(PATIENCE, async {
            let mut frames = Vec::new();
            while let Some(frame) = self.next_frame().await {
                frames.push(frame);
            }
            frames
        })
        .await
        .unwrap_or_else(|_| panic!("{what}: still open after {PATIENCE:?}"))
    }
}

fn grpc_addr(app: &TestApp) -> SocketAddr {
    app.grpc
        .trim_start_matches("http://")
        .parse()
        .expect("the gRPC address")
}

async fn timed_out(app: &TestApp, timeout: &str) -> Option<f64> {
    metric(
        app,
        &format!("udaconnect_grpc_connections_timed_out_total{{timeout=\"{timeout}\"}}"),
    )
    .await
}

#[tokio::test]
async fn a_silent_connection_and_one_that_sends_only_the_preface_are_closed() {
    let app = spawn_app(&["--grpc-header-timeout", "300ms"]).await;
    let mut silent = Raw::connect(&app).await;
    let mut preface = Raw::connect(&app).await;
    preface.send(PREFACE).await;
    let mut settings = Raw::handshake(&app).await;
    silent.until_closed("a silent connection").await;
    preface
        .until_closed("a connection that sent the preface")
        .await;
    settings
        .until_closed("a connection that sent the preface and settings")
        .await;
    assert_eq!(timed_out(&app, "header").await, Some(3.0));
    assert_eq!(timed_out(&app, "keepalive").await, Some(0.0));
    app.stop().await;
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let app = spawn_app(&["--grpc-idle-timeout", "300ms"]).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        // One whole call (a health check), then nothing.
        let mut raw = Raw::handshake(&app).await;
        raw.send(&call_headers("/grpc.health.v1.Health/Check"))
            .await;
        raw.send(&call_data(&[], END_STREAM)).await;
        clients.push(raw);
    }
    for raw in &mut clients {
        let frames = raw.until_closed("an idle connection").await;
        let answered = frames.iter().any(|(kind, flags, stream, _)| {
            *kind == HEADERS && flags & END_STREAM != 0 && *stream == 1
        });
        assert!(answered, "the call was answered first: {frames:?}");
        assert!(
            frames.iter().any(|(kind, ..)| *kind == GOAWAY),
            "told to go away: {frames:?}"
        );
    }
    assert_eq!(timed_out(&app, "idle").await, Some(20.0));
    assert_eq!(timed_out(&app, "header").await, Some(0.0));
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_answer_pings_is_dropped() {
    let app = spawn_app(&[
        "--grpc-keepalive-interval",
        "200ms",
        "--grpc-keepalive-timeout",
        "200ms",
    ])
    .await;
    // A client that answers pings, open throughout.
    let mut answering = HealthClient::new(channel(&app).await);
    answering
        .check(HealthCheckRequest::default())
        .await
        .expect("answered");
    // A stream open (so neither the header nor the idle timeout applies),
    // and pings left unanswered.
    let mut raw = Raw::handshake(&app).await;
    raw.answers = false;
    raw.send(&call_headers("/udaconnect.v1.IngestService/Ingest"))
        .await;
    let frames = raw
        .until_closed("a client that does not answer pings")
        .await;
    assert!(
        frames.iter().any(|(kind, ..)| *kind == PING),
        "pinged: {frames:?}"
    );
    // Only that one: the client that answers was pinged too, and kept.
    assert_eq!(timed_out(&app, "keepalive").await, Some(1.0));
    assert_eq!(timed_out(&app, "header").await, Some(0.0));
    assert_eq!(timed_out(&app, "idle").await, Some(0.0));
    answering
        .check(HealthCheckRequest::default())
        .await
        .expect("answered on the same connection");
    assert_eq!(timed_out(&app, "keepalive").await, Some(1.0));
    app.stop().await;
}

async fn channel(app: &TestApp) -> Channel {
    Channel::from_shared(app.grpc.clone())
        .expect("a URL")
        .connect()
        .await
        .expect("connects")
}

async fn person(app: &TestApp) -> i32 {
    let (status, person) = app
        .post(
            "/api/v2/persons",
            &json!({"first_name": "Gus", "last_name": "Grpc", "company_name": "Edge Co"}),
        )
        .await;
    assert_eq!(status, 201, "{person}");
    i32::try_from(person["id"].as_i64().expect("an id")).expect("small")
}

fn batch(batch_id: u64, person_id: i32, minute: u32) -> LocationBatch {
    LocationBatch {
        batch_id,
        locations: vec![LocationInput {
            person_id,
            lat: 45.0,
            lon: 7.0,
            time: format!("2021-03-01T10:{minute:02}:00Z"),
            key: String::new(),
        }],
    }
}

#[tokio::test]
async fn a_call_whose_client_sends_nothing_ends_with_deadline_exceeded() {
    let app = spawn_app(&["--grpc-stream-idle-timeout", "300ms"]).await;
    let gus = person(&app).await;

    // A stream that sends one batch, then nothing.
    let mut ingest = IngestServiceClient::new(channel(&app).await);
    let (batches, outgoing) = tokio::sync::mpsc::channel(1);
    let mut replies = ingest
        .ingest(tokio_stream::wrappers::ReceiverStream::new(outgoing))
        .await
        .expect("a stream")
        .into_inner();
    batches.send(batch(1, gus, 0)).await.expect("sent");
    let reply = replies.message().await.expect("a reply").expect("one");
    assert_eq!((reply.batch_id, reply.accepted), (1, 1));
    let status = tokio::time::timeout(PATIENCE, replies.message())
        .await
        .expect("ended in time")
        .expect_err("ended by the server");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    drop(batches);

    // A unary call whose client sends its headers and never its message.
    let mut grpc = tonic::client::Grpc::new(channel(&app).await);
    grpc.ready().await.expect("ready");
    let status = tokio::time::timeout(
        PATIENCE,
        grpc.client_streaming::<_, Vec<u8>, Vec<u8>, _>(
            tonic::Request::new(futures::stream::pending::<Vec<u8>>()),
            "/udaconnect.v1.IngestService/IngestBatch"
                .parse()
                .expect("a path"),
            AsIs,
        ),
    )
    .await
    .expect("ended in time")
    .expect_err("ended by the server");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");

    // Over raw HTTP/2: a whole batch, then half of one, then nothing. The
    // whole one is answered and stored; the half one never.
    let mut raw = Raw::handshake(&app).await;
    raw.send(&call_headers("/udaconnect.v1.IngestService/Ingest"))
        .await;
    raw.send(&call_data(&batch(2, gus, 1).encode_to_vec(), 0))
        .await;
    let half = batch(3, gus, 2).encode_to_vec();
    let mut cut = call_data(&half, 0);
    cut.truncate(cut.len() - half.len() / 2);
    let len = u32::try_from(cut.len() - 9).expect("small").to_be_bytes();
    cut[..3].copy_from_slice(&len[1..]);
    raw.send(&cut).await;
    let mut ids = Vec::new();
    let ended = tokio::time::timeout(PATIENCE, async {
        while let Some((kind, flags, stream, payload)) = raw.next_frame().await {
            if stream != 1 {
                continue;
            }
            if kind == DATA && payload.len() > 5 {
                ids.extend(BatchReply::decode(&payload[5..]).expect("a reply").ids);
            }
            if kind == HEADERS && flags & END_STREAM != 0 {
                return true;
            }
        }
        false
    })
    .await
    .expect("ended in time");
    assert!(ended, "the call ended with its status");
    assert_eq!(ids.len(), 1, "the whole batch was answered");
    let stored =
        super::helpers::eventually_get(&app, &format!("/api/v2/locations/{}", ids[0])).await;
    assert_eq!(stored["time"], "2021-03-01T10:01:00Z");
    let (status, page) = app
        .get(&format!(
            "/api/v2/persons/{gus}/locations?start=2021-03-01&end=2021-03-02"
        ))
        .await;
    assert_eq!(status, 200, "{page}");
    let times: Vec<&str> = page["locations"]
        .as_array()
        .expect("locations")
        .iter()
        .filter_map(|location| location["time"].as_str())
        .collect();
    assert_eq!(
        times,
        ["2021-03-01T10:00:00Z", "2021-03-01T10:01:00Z"],
        "the half batch is not stored"
    );
    assert_eq!(
        metric(
            &app,
            "udaconnect_grpc_requests_total{service=\"udaconnect.v1.IngestService\",method=\"Ingest\",code=\"DEADLINE_EXCEEDED\"}"
        )
        .await,
        Some(2.0)
    );
    drop(raw);
    app.stop().await;
}

/// Sends and receives message bytes as they are, valid protobuf or not.
#[derive(Debug, Clone, Copy, Default)]
struct AsIs;

impl Codec for AsIs {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = AsIs;
    type Decoder = AsIs;

    fn encoder(&mut self) -> Self::Encoder {
        AsIs
    }

    fn decoder(&mut self) -> Self::Decoder {
        AsIs
    }
}

impl Encoder for AsIs {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for AsIs {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

/// The status of a unary call to `path` with `message`, and of a stream
/// to `Ingest` sending it.
async fn statuses(app: &TestApp, message: &[u8]) -> (Code, Code) {
    let mut grpc = tonic::client::Grpc::new(channel(app).await);
    grpc.ready().await.expect("ready");
    let unary = grpc
        .unary::<Vec<u8>, Vec<u8>, _>(
            tonic::Request::new(message.to_vec()),
            "/udaconnect.v1.IngestService/IngestBatch"
                .parse()
                .expect("a path"),
            AsIs,
        )
        .await
        .expect_err("refused");
    grpc.ready().await.expect("ready");
    let mut replies = grpc
        .streaming::<_, Vec<u8>, Vec<u8>, _>(
            tonic::Request::new(futures::stream::iter([message.to_vec()])),
            "/udaconnect.v1.IngestService/Ingest"
                .parse()
                .expect("a path"),
            AsIs,
        )
        .await
        .expect("a stream")
        .into_inner();
    let streamed = replies.message().await.expect_err("refused");
    (unary.code(), streamed.code())
}

#[tokio::test]
async fn undecodable_and_oversized_messages_are_the_clients_errors() {
    let app = spawn_app(&["--ingest-max-body", "1024"]).await;
    // Field 1 (batch_id) as a varint whose bytes never end.
    assert_eq!(
        statuses(&app, &[0x08, 0xff, 0xff]).await,
        (Code::InvalidArgument, Code::InvalidArgument)
    );
    assert_eq!(
        statuses(&app, &[0u8; 2000]).await,
        (Code::ResourceExhausted, Code::ResourceExhausted)
    );
    for (method, code) in [
        ("IngestBatch", "INVALID_ARGUMENT"),
        ("Ingest", "INVALID_ARGUMENT"),
        ("IngestBatch", "RESOURCE_EXHAUSTED"),
        ("Ingest", "RESOURCE_EXHAUSTED"),
    ] {
        let sample = format!(
            "udaconnect_grpc_requests_total{{service=\"udaconnect.v1.IngestService\",method=\"{method}\",code=\"{code}\"}}"
        );
        assert_eq!(metric(&app, &sample).await, Some(1.0), "{sample}");
    }
    assert_eq!(
        metric(
            &app,
            "udaconnect_grpc_request_duration_seconds_count{service=\"udaconnect.v1.IngestService\",method=\"IngestBatch\"}"
        )
        .await,
        Some(2.0)
    );
    app.stop().await;
}

#[tokio::test]
async fn beyond_the_connection_cap_a_connection_is_closed_while_health_answers() {
    let app = spawn_app(&["--grpc-max-connections", "2"]).await;
    let mut first = HealthClient::new(channel(&app).await);
    let mut second = HealthClient::new(channel(&app).await);
    for client in [&mut first, &mut second] {
        client
            .check(HealthCheckRequest::default())
            .await
            .expect("under the cap");
    }
    let mut third = Raw::connect(&app).await;
    assert!(
        third
            .until_closed("a connection beyond the cap")
            .await
            .is_empty(),
        "closed before a frame"
    );
    app.wait_readyz(200).await;
    assert_eq!(
        metric(&app, "udaconnect_grpc_connections_refused_total").await,
        Some(1.0)
    );
    assert_eq!(metric(&app, "udaconnect_grpc_connections").await, Some(2.0));
    first
        .check(HealthCheckRequest::default())
        .await
        .expect("those under the cap are served");
    // One leaves: a new one is served.
    drop(second);
    testkit::eventually("a place under the cap", PATIENCE, || async {
        let mut client = HealthClient::new(channel(&app).await);
        client.check(HealthCheckRequest::default()).await.ok()
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn reflection_in_both_versions_lists_every_service() {
    use tonic_reflection::pb::{v1, v1alpha};
    let app = spawn_app(&[]).await;
    let expected = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "udaconnect.v1.IngestService",
        "udaconnect.v1.LocationService",
    ];

    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel(&app).await);
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let answer = client
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("v1 is served")
        .into_inner()
        .message()
        .await
        .expect("an answer")
        .expect("one");
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("a list of services: {answer:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(names, expected);

    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(channel(&app).await);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let answer = client
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("v1alpha is served")
        .into_inner()
        .message()
        .await
        .expect("an answer")
        .expect("one");
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("a list of services: {answer:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(names, expected);
    app.stop().await;
}

#[tokio::test]
async fn health_says_serving_for_every_service_served() {
    let app = spawn_app(&[]).await;
    let health = HealthClient::new(channel(&app).await);
    for service in [
        "",
        "udaconnect.v1.LocationService",
        "udaconnect.v1.IngestService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        testkit::eventually(&format!("{service:?} serving"), PATIENCE, || {
            let mut health = health.clone();
            async move {
                let status = health
                    .check(HealthCheckRequest {
                        service: service.to_owned(),
                    })
                    .await
                    .ok()?
                    .into_inner()
                    .status;
                (status == ServingStatus::Serving as i32).then_some(())
            }
        })
        .await;
    }
    app.stop().await;
}
