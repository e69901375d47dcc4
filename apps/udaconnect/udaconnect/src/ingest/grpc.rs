//! The edge over gRPC (`proto/udaconnect.proto`): `LocationService.Create`
//! for clients of the common refactor of the original, and
//! `IngestService.IngestBatch` / `IngestService.Ingest` (a stream of
//! batches, one reply each, in order) for phones at volume. Every call goes
//! through the same path as HTTP ([`super::edge`]).

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status, Streaming, metadata::MetadataValue};
use tonic_types::{ErrorDetails, StatusExt};

use super::{
    edge::{Edge, Outcome, Refusal},
    validate::{Submitted, Time},
};
use crate::{
    api::{compat::compat_location, compat_wire::CompatNewLocation, compat_wire::NumberOrText},
    proto::v1::{
        BatchReply, Location, LocationBatch, Rejected, ingest_service_server::IngestService,
        location_service_server::LocationService,
    },
};

/// The transport label of these calls' metrics.
const TRANSPORT: &str = "grpc";

/// Both services, on one edge.
#[derive(Clone)]
pub struct GrpcEdge {
    edge: Edge,
    shutdown: CancellationToken,
}

impl GrpcEdge {
    /// The services of `edge`; open streams end when `shutdown` is cancelled.
    pub fn new(edge: Edge, shutdown: CancellationToken) -> Self {
        Self { edge, shutdown }
    }

    async fn batch(&self, batch: LocationBatch) -> Result<BatchReply, Status> {
        let settings = self.edge.settings();
        if batch.locations.is_empty() {
            return Err(Status::invalid_argument("the batch holds no location"));
        }
        if batch.locations.len() > settings.ingest_max_batch {
            return Err(Status::invalid_argument(format!(
                "the batch holds {} locations; at most {} are taken at once",
                batch.locations.len(),
                settings.ingest_max_batch
            )));
        }
        let items = batch
            .locations
            .into_iter()
            .map(|input| {
                Ok(Submitted {
                    person_id: i64::from(input.person_id),
                    lat: input.lat,
                    lon: input.lon,
                    time: Time::Text(input.time),
                    key: Some(input.key),
                })
            })
            .collect();
        let outcome = self
            .edge
            .ingest(TRANSPORT, items)
            .await
            .map_err(|refusal| self.unavailable(&refusal))?;
        Ok(reply(batch.batch_id, &outcome))
    }

    fn unavailable(&self, refusal: &Refusal) -> Status {
        let mut status = Status::unavailable(refusal.to_string());
        let seconds = self.edge.settings().ingest_retry_after.as_secs().max(1);
        status
            .metadata_mut()
            .insert("retry-after", MetadataValue::from(seconds));
        status
    }
}

fn reply(batch_id: u64, outcome: &Outcome) -> BatchReply {
    BatchReply {
        batch_id,
        accepted: u32::try_from(outcome.accepted.len()).unwrap_or(u32::MAX),
        ids: outcome.ids(),
        rejected: outcome
            .rejected
            .iter()
            .map(|rejection| Rejected {
                index: u32::try_from(rejection.index).unwrap_or(u32::MAX),
                reason: rejection.reason.clone(),
            })
            .collect(),
    }
}

/// INVALID_ARGUMENT naming `field`, with a `google.rpc.BadRequest`.
fn invalid(field: &str, reason: &str) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        reason.to_owned(),
        ErrorDetails::with_bad_request_violation(field, reason),
    )
}

/// The field an edge or API error message starts with.
fn field_of(message: &str) -> &str {
    let first = message.split([':', ' ']).next().unwrap_or_default();
    if first.is_empty() { "location" } else { first }
}

#[tonic::async_trait]
impl LocationService for GrpcEdge {
    async fn create(&self, request: Request<Location>) -> Result<Response<Location>, Status> {
        let location = request.into_inner();
        let body = CompatNewLocation {
            id: None,
            person_id: NumberOrText::Number(location.person_id.into()),
            latitude: NumberOrText::Text(location.latitude),
            longitude: NumberOrText::Text(location.longitude),
            creation_time: (!location.creation_time.is_empty()).then_some(location.creation_time),
        };
        let checked =
            compat_location(&body).map_err(|err| invalid(field_of(&err.message), &err.message))?;
        let item = Submitted {
            person_id: i64::from(checked.person_id),
            lat: checked.position.lat,
            lon: checked.position.lon,
            time: Time::Parsed(checked.time),
            key: None,
        };
        let outcome = self
            .edge
            .ingest(TRANSPORT, vec![Ok(item)])
            .await
            .map_err(|refusal| self.unavailable(&refusal))?;
        if let Some(rejection) = outcome.rejected.first() {
            return Err(invalid(field_of(&rejection.reason), &rejection.reason));
        }
        let record = outcome
            .accepted
            .first()
            .ok_or_else(|| Status::internal("the location was neither taken nor rejected"))?;
        let stored = crate::api::compat_wire::CompatLocation::fetched(&record.location());
        Ok(Response::new(Location {
            id: stored.id,
            person_id: stored.person_id,
            latitude: stored.latitude,
            longitude: stored.longitude,
            creation_time: stored.creation_time,
        }))
    }
}

/// The replies of a stream of batches.
pub type ReplyStream = Pin<Box<dyn Stream<Item = Result<BatchReply, Status>> + Send>>;

#[tonic::async_trait]
impl IngestService for GrpcEdge {
    async fn ingest_batch(
        &self,
        request: Request<LocationBatch>,
    ) -> Result<Response<BatchReply>, Status> {
        self.batch(request.into_inner()).await.map(Response::new)
    }

    type IngestStream = ReplyStream;

    async fn ingest(
        &self,
        request: Request<Streaming<LocationBatch>>,
    ) -> Result<Response<Self::IngestStream>, Status> {
        let inbound = request.into_inner();
        let service = self.clone();
        let shutdown = self.shutdown.clone();
        // One batch at a time, in order: a reply per batch; an error ends
        // the stream (the client opens another and resends what had no
        // reply).
        let replies = futures::stream::unfold(
            (inbound, service, false),
            |(mut inbound, service, ended)| async move {
                if ended {
                    return None;
                }
                let next = tokio::select! {
                    next = inbound.message() => next,
                    () = service.shutdown.cancelled() => return None,
                };
                match next {
                    Ok(Some(batch)) => {
                        let reply = service.batch(batch).await;
                        let failed = reply.is_err();
                        Some((reply, (inbound, service, failed)))
                    }
                    Ok(None) => None,
                    Err(status) => Some((Err(status), (inbound, service, true))),
                }
            },
        )
        .take_until(shutdown.cancelled_owned());
        Ok(Response::new(Box::pin(replies)))
    }
}
