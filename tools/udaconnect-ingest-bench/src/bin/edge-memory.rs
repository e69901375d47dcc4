//! `edge-memory` (`make bench-edge-memory`): what one hostile request
//! costs an ingest edge in memory. Each body below goes to a fresh
//! `udaconnect ingest` (so that memory an earlier request freed, and the
//! allocator kept, hides nothing), and the kernel's own accounting says
//! how far the edge's peak resident memory rose above what it held just
//! before (`VmHWM`, reset through `clear_refs`), and how much more it still
//! holds once answered (`VmRSS`):
//!
//! - NDJSON of `1` lines and JSON `{"locations":[1,1,…]}`, 2 MB and
//!   `UDACONNECT_INGEST_MAX_BODY` (16 MiB, the default), to
//!   `POST /api/v2/locations:batch`;
//! - a gRPC `LocationBatch` of empty items, as large as the edge takes.
//!
//! `BENCH_UDACONNECT` names the binary to measure (by default the release
//! build beside this one), so that an older build can be measured side by
//! side; `BENCH_LABEL` says which build it is in the rows. It prints a
//! `RESULT {...}` line and adds a row per body to BENCHMARKS.md
//! (`BENCH_OUTPUT=-`: none).
//!
//! The edge's database is never reached by these requests (each is
//! refused before any person is looked up), so it points nowhere.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use bytes::{Buf, BufMut, Bytes};
use serde_json::json;
use testkit::{AppProcess, NatsServer, bench, free_port};
use tonic::{
    Request, Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    codegen::http::uri::PathAndQuery,
    transport::Channel,
};

/// The table in BENCHMARKS.md this benchmark adds its rows to.
const HEADING: &str = "## UdaConnect edge memory per request";
const HEADER: &str = "| date | build measured | request | bytes | answer | seconds | peak memory rise MB | held after MB | load avg | machine | command |";
/// The edge's default `UDACONNECT_INGEST_MAX_BODY`, and its largest gRPC
/// message.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Long enough for the slowest build measured to answer.
const PATIENCE: Duration = Duration::from_secs(600);

/// One request to measure.
struct Case {
    what: &'static str,
    body: Body,
}

enum Body {
    Http {
        content_type: &'static str,
        bytes: Vec<u8>,
    },
    Grpc(Bytes),
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Body::Http { bytes, .. } => bytes.len(),
            Body::Grpc(bytes) => bytes.len(),
        }
    }
}

/// `len` bytes of NDJSON lines `1`.
fn ndjson_ones(len: usize) -> Vec<u8> {
    b"1\n".repeat(len / 2)
}

/// `{"locations":[1,1,…]}`, at most `len` bytes.
fn json_ones(len: usize) -> Vec<u8> {
    let count = (len - 15) / 2;
    let mut body = b"{\"locations\":[".to_vec();
    body.extend_from_slice(&b"1,".repeat(count - 1));
    body.extend_from_slice(b"1]}");
    body
}

/// An encoded `LocationBatch` of empty items, `len` bytes.
fn grpc_empty_items(len: usize) -> Bytes {
    let mut encoded = Vec::with_capacity(len);
    encoded.extend_from_slice(&[0x08, 0x01]);
    encoded.extend_from_slice(&[0x12, 0x00].repeat((len - 2) / 2));
    Bytes::from(encoded)
}

fn cases() -> Vec<Case> {
    let ndjson = "application/x-ndjson";
    let json = "application/json";
    let two_mb = 2 * 1024 * 1024;
    vec![
        Case {
            what: "NDJSON of `1` lines, 2 MB",
            body: Body::Http {
                content_type: ndjson,
                bytes: ndjson_ones(two_mb),
            },
        },
        Case {
            what: "JSON `[1,1,…]`, 2 MB",
            body: Body::Http {
                content_type: json,
                bytes: json_ones(two_mb),
            },
        },
        Case {
            what: "NDJSON of `1` lines, 16 MiB",
            body: Body::Http {
                content_type: ndjson,
                bytes: ndjson_ones(MAX_BODY),
            },
        },
        Case {
            what: "JSON `[1,1,…]`, 16 MiB",
            body: Body::Http {
                content_type: json,
                bytes: json_ones(MAX_BODY),
            },
        },
        Case {
            what: "gRPC `LocationBatch` of 8.4 M empty items, 16 MiB",
            body: Body::Grpc(grpc_empty_items(MAX_BODY)),
        },
    ]
}

/// What one request cost.
struct Cost {
    answer: String,
    seconds: f64,
    memory: bench::MemoryCost,
}

async fn measure(binary: &Path, nats: &NatsServer, body: Body) -> anyhow::Result<Cost> {
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
    let binary = binary.to_owned();
    let edge = tokio::task::spawn_blocking(move || {
        AppProcess::spawn(&binary, "UDACONNECT", &["ingest"], &envs)
    })
    .await?;
    let pid = edge.pid();
    let channel = match &body {
        Body::Grpc(_) => Some(
            Channel::from_shared(format!("http://127.0.0.1:{grpc_port}"))?
                .connect_timeout(Duration::from_secs(30))
                .connect()
                .await
                .context("connect to the edge's gRPC port")?,
        ),
        Body::Http { .. } => None,
    };
    let before = bench::memory_before(pid)?;
    let started = Instant::now();
    let answer = match body {
        Body::Http {
            content_type,
            bytes,
        } => {
            let response = reqwest::Client::builder()
                .timeout(PATIENCE)
                .build()?
                .post(format!("{}/api/v2/locations:batch", edge.base_url()))
                .header("content-type", content_type)
                .body(bytes)
                .send()
                .await?;
            response.status().as_u16().to_string()
        }
        Body::Grpc(encoded) => {
            let channel = channel.context("a channel")?;
            let mut grpc = tonic::client::Grpc::new(channel);
            grpc.ready().await?;
            let reply = tokio::time::timeout(
                PATIENCE,
                grpc.unary(
                    Request::new(encoded),
                    PathAndQuery::from_static("/udaconnect.v1.IngestService/IngestBatch"),
                    RawBatch,
                ),
            )
            .await?;
            match reply {
                Ok(_) => "OK".to_owned(),
                Err(status) => format!("{:?}", status.code()),
            }
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    Ok(Cost {
        answer,
        seconds,
        memory: bench::memory_cost(pid, before)?,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let measured = bench::measured("BENCH_UDACONNECT", "udaconnect", "bench-edge-memory")?;
    let nats = tokio::task::spawn_blocking(NatsServer::start).await?;
    let mut results = Vec::new();
    for case in cases() {
        let bytes = case.body.len();
        let load = bench::load_average();
        let cost = measure(&measured.binary, &nats, case.body).await?;
        eprintln!(
            "edge-memory: {}: {bytes} bytes, answered {} in {:.2} s, peak +{:.1} MB, held after +{:.1} MB",
            case.what,
            cost.answer,
            cost.seconds,
            cost.memory.peak_rise_mb,
            cost.memory.held_after_mb
        );
        measured.record_memory(
            HEADING,
            HEADER,
            &[
                case.what.to_owned(),
                bytes.to_string(),
                cost.answer.clone(),
                format!("{:.2}", cost.seconds),
            ],
            &cost.memory,
            &load,
        )?;
        results.push(json!({
            "request": case.what,
            "bytes": bytes,
            "answer": cost.answer,
            "seconds": cost.seconds,
            "peak_rise_mb": cost.memory.peak_rise_mb,
            "held_after_mb": cost.memory.held_after_mb,
        }));
    }
    println!(
        "RESULT {}",
        json!({"build": measured.label, "binary": measured.binary.display().to_string(), "requests": results})
    );
    Ok(())
}

/// Sends an encoded message as it is, whatever it holds; reads the reply
/// only to its end.
#[derive(Clone, Copy)]
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

struct Drain;

impl Decoder for Drain {
    type Item = ();
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, Status> {
        src.advance(src.remaining());
        Ok(Some(()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

impl Codec for RawBatch {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = Drain;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Drain {
        Drain
    }
}
