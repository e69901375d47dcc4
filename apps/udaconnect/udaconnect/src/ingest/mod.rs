//! `udaconnect ingest`, the edge: takes locations over gRPC and HTTP (the
//! phones' apps, OwnTracks and OsmAnd senders, among its clients),
//! checks each, gives the good ones ids (claiming their idempotency keys,
//! so that a retry is answered with the id first answered) and answers as
//! soon as they are on the LOCATIONS stream, never waiting for the writers
//! (they store them from there). See [`edge`] for the one path every transport takes.
//!
//! Ready (`/readyz`, and gRPC health) while the bus is connected, the
//! stream is in place and has room, the person ids are loaded and location
//! ids are at hand; a full stream or a lost broker make it say so.

pub mod edge;
pub mod friends;
pub mod grpc;
pub mod http;
pub mod ids;
pub mod items;
pub mod keys;
pub mod metrics;
pub mod persons;
pub mod phone_http;
pub mod phones;
pub mod rejections;
pub mod single;
pub mod validate;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use platform::{
    bus::BusStream,
    config::ConfigError,
    grpc::{GrpcMetrics, GrpcServices},
    health::{Readiness, ReadyFlag},
    service::{BoxFuture, Component, ServiceBuilder},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use udaconnect_domain::Store;
use utoipa_axum::{router::OpenApiRouter, routes};

use self::{edge::Edge, grpc::GrpcEdge, ids::IdPool, metrics::EdgeMetrics, persons::KnownPersons};
use crate::{
    access::Access,
    cli::IngestArgs,
    proto::{
        self,
        v1::{
            ingest_service_server::IngestServiceServer,
            location_service_server::LocationServiceServer,
        },
    },
};

/// How often the edge looks whether a full stream has room again, and
/// updates the gRPC health status.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The edge, bound and ready to run.
pub struct IngestComponent {
    edge: Edge,
    persons: KnownPersons,
    ids: IdPool,
    stream: BusStream,
    grpc: TcpListener,
    grpc_metrics: GrpcMetrics,
    readiness: Readiness,
    stream_ready: ReadyFlag,
    persons_loaded: ReadyFlag,
    ids_available: ReadyFlag,
    room: ReadyFlag,
}

impl IngestComponent {
    /// Binds the gRPC listener and registers the edge's metrics and
    /// readiness checks on `service`.
    pub async fn build(
        service: &mut ServiceBuilder,
        store: Arc<dyn Store>,
        access: Access,
        stream: BusStream,
        settings: IngestArgs,
    ) -> Result<Self, ConfigError> {
        let grpc = TcpListener::bind(settings.grpc_addr).await.map_err(|err| {
            ConfigError::new(
                "UDACONNECT_GRPC_ADDR",
                "--grpc-addr",
                format!("cannot listen on {}: {err}", settings.grpc_addr),
            )
        })?;
        let metrics = EdgeMetrics::register(service.registry());
        let grpc_metrics = GrpcMetrics::register(service.registry());
        let readiness = service.readiness().clone();
        let connected = stream.clone();
        readiness.add_check("ingest: bus connected", move || connected.is_connected());
        let stream_ready = readiness.flag("ingest: location stream in place");
        let room = readiness.flag("ingest: location stream has room");
        room.set(true);
        let persons_loaded = readiness.flag("ingest: person ids loaded");
        let ids_available = readiness.flag("ingest: location ids at hand");
        let persons = KnownPersons::new(Arc::clone(&store));
        let ids = IdPool::new(Arc::clone(&store), settings.ingest_id_block);
        let edge = Edge::new(
            access,
            persons.clone(),
            ids.clone(),
            store,
            stream.clone(),
            settings,
            metrics,
            room.clone(),
        );
        Ok(Self {
            edge,
            persons,
            ids,
            stream,
            grpc,
            grpc_metrics,
            readiness,
            stream_ready,
            persons_loaded,
            ids_available,
            room,
        })
    }

    /// Where the gRPC server listens.
    pub fn grpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.grpc.local_addr()
    }

    /// The edge itself, for a feed in the same process.
    pub fn edge(&self) -> Edge {
        self.edge.clone()
    }

    /// The edge's HTTP routes, documented.
    pub fn routes(&self) -> OpenApiRouter {
        OpenApiRouter::new()
            .routes(routes!(http::batch))
            .routes(routes!(http::create_compat))
            .routes(routes!(http::create_v2))
            .routes(routes!(phone_http::owntracks))
            .routes(routes!(phone_http::osmand))
            .with_state(self.edge.clone())
    }
}

impl Component for IngestComponent {
    fn name(&self) -> &'static str {
        "ingest"
    }

    fn run(
        self: Box<Self>,
        shutdown: CancellationToken,
        _deadline: Duration,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let this = *self;
            let addr = this.grpc.local_addr().ok();
            let settings = this.edge.settings();
            let max = settings.ingest_max_body;
            let limits = settings.grpc.limits();
            let mut services = GrpcServices::new(proto::DESCRIPTOR, max);
            let edge = GrpcEdge::new(this.edge.clone(), shutdown.clone());
            services
                .add(LocationServiceServer::new(edge.clone()).max_decoding_message_size(max))
                .add(IngestServiceServer::new(edge).max_decoding_message_size(max));
            let (router, health) = match services.build().await {
                Ok(built) => built,
                Err(err) => {
                    tracing::error!(error = %err, "cannot serve gRPC");
                    return;
                }
            };
            let grpc = platform::grpc::serve(
                this.grpc,
                router,
                limits,
                this.grpc_metrics.clone(),
                shutdown.clone(),
            );
            if let Some(addr) = addr {
                tracing::info!(grpc = %addr, "ingest: gRPC listening");
            }
            let prepare = async {
                if this.stream.prepare(&shutdown).await {
                    this.stream_ready.set(true);
                    tracing::info!(stream = %this.stream.settings().name, bus = this.stream.kind(), "ingest: publishing");
                }
            };
            let health_loop = async {
                let mut serving = None;
                let mut interval = tokio::time::interval(PROBE_EVERY);
                loop {
                    tokio::select! {
                        _ = interval.tick() => {}
                        () = shutdown.cancelled() => break,
                    }
                    if !this.room.get() {
                        probe_room(&this.stream, &this.room).await;
                    }
                    let ready = this.readiness.waiting_for().is_empty();
                    if serving != Some(ready) {
                        health.set_serving(ready).await;
                        serving = Some(ready);
                    }
                }
                health.set_serving(false).await;
            };
            tokio::join!(
                grpc,
                prepare,
                health_loop,
                this.persons.keep_current(
                    this.edge.settings().ingest_person_refresh,
                    &this.persons_loaded,
                    &shutdown
                ),
                this.ids.keep_filled(&this.ids_available, &shutdown),
            );
        })
    }
}

/// Turns `room` back on once the stream holds fewer messages than its
/// limit (the writers caught up).
async fn probe_room(stream: &BusStream, room: &ReadyFlag) {
    match stream.messages().await {
        Ok(held) if held < stream.settings().max_messages => {
            tracing::info!(held, "ingest: location stream has room again");
            room.set(true);
        }
        Ok(_) => {}
        Err(err) => tracing::debug!(error = %err, "cannot read the stream's size"),
    }
}
