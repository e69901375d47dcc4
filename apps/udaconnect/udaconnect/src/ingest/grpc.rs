//! The edge over gRPC (`proto/udaconnect.proto`): `LocationService.Create`
//! for clients of the common refactor of the original, and
//! `IngestService.IngestBatch` / `IngestService.Ingest` (a stream of
//! batches, one reply each, in order) for phones at volume. Every call goes
//! through the same path as HTTP ([`super::edge`]); `Create` reads the
//! original's body exactly as `POST /api/locations` does
//! ([`super::single`]). A batch is decoded no further than the item limit
//! allows ([`crate::proto::LocationBatch`]).

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status, Streaming, metadata::MetadataValue};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};
use udaconnect_domain::Invalid;

use super::{
    edge::{Edge, Outcome, Refusal},
    items::TooMany,
    single::{self, Failure},
    validate::{Submitted, Time},
};
use crate::{
    access::{Caller, Denied, caller::bearer_token},
    api::compat_wire::{CompatLocation, CompatNewLocation, NumberOrText},
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

    /// Who made `request`: its `authorization` metadata (`Bearer <token>`).
    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .map(|value| {
                value.to_str().ok().and_then(bearer_token).ok_or_else(|| {
                    Status::unauthenticated("the authorization metadata is not `Bearer <token>`")
                })
            })
            .transpose()?;
        self.edge
            .access()
            .caller(token)
            .await
            .map_err(|denied| denial(&denied))
    }

    async fn batch(&self, caller: Caller, batch: LocationBatch) -> Result<BatchReply, Status> {
        caller.submits_any().map_err(|denied| denial(&denied))?;
        if batch.locations.is_empty() {
            return Err(Status::invalid_argument("the batch holds no location"));
        }
        let max = self.edge.settings().ingest_max_batch;
        if batch.locations.len() > max {
            return Err(Status::invalid_argument(TooMany { max }.to_string()));
        }
        let mut items = self.edge.batch();
        for input in batch.locations {
            items
                .push(|| {
                    Ok(Submitted {
                        person_id: i64::from(input.person_id),
                        lat: input.lat,
                        lon: input.lon,
                        time: Time::Text(input.time),
                        key: Some(input.key),
                    })
                })
                .map_err(|too_many| Status::invalid_argument(too_many.to_string()))?;
        }
        let outcome = self
            .edge
            .ingest(TRANSPORT, caller, items)
            .await
            .map_err(|refusal| self.unavailable(&refusal))?;
        Ok(reply(batch.batch_id, &outcome))
    }

    fn unavailable(&self, refusal: &Refusal) -> Status {
        if let Refusal::Denied(denied) = refusal {
            return denial(denied);
        }
        let mut status = Status::unavailable(refusal.to_string());
        let seconds = self.edge.settings().ingest_retry_after.as_secs().max(1);
        status
            .metadata_mut()
            .insert("retry-after", MetadataValue::from(seconds));
        status
    }
}

fn reply(batch_id: u64, outcome: &Outcome) -> BatchReply {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    BatchReply {
        batch_id,
        accepted: count(outcome.accepted.len()),
        ids: outcome.ids(),
        rejected: outcome
            .rejected
            .listed()
            .iter()
            .map(|rejection| Rejected {
                index: count(rejection.index),
                reason: rejection.invalid.to_string(),
                field: rejection.invalid.field.to_owned(),
                problem: rejection.invalid.problem.label().to_owned(),
                stored_id: rejection.stored_id,
            })
            .collect(),
        rejected_count: count(outcome.rejected.count()),
    }
}

/// UNAUTHENTICATED, PERMISSION_DENIED or UNAVAILABLE, as HTTP's 401, 403
/// and 503.
fn denial(denied: &Denied) -> Status {
    match denied {
        Denied::Unauthenticated(message) => Status::unauthenticated(*message),
        Denied::Forbidden(message) => Status::permission_denied(message.clone()),
        Denied::Unavailable => Status::unavailable(denied.to_string()),
    }
}

/// INVALID_ARGUMENT with a `google.rpc.BadRequest` naming the field and
/// the kind of problem.
fn invalid(invalid: &Invalid) -> Status {
    let mut violation = FieldViolation::new(invalid.field, invalid.message.clone());
    violation.reason = invalid.problem.code().to_owned();
    Status::with_error_details(
        Code::InvalidArgument,
        invalid.to_string(),
        ErrorDetails::with_bad_request(vec![violation]),
    )
}

#[tonic::async_trait]
impl LocationService for GrpcEdge {
    async fn create(&self, request: Request<Location>) -> Result<Response<Location>, Status> {
        // The original's call: the organiser's (or everyone's, open).
        let caller = self.caller(&request).await?;
        caller.organiser().map_err(|denied| denial(&denied))?;
        let location = request.into_inner();
        let body = CompatNewLocation {
            id: None,
            person_id: NumberOrText::Number(location.person_id.into()),
            latitude: NumberOrText::Text(location.latitude),
            longitude: NumberOrText::Text(location.longitude),
            creation_time: (!location.creation_time.is_empty()).then_some(location.creation_time),
        };
        let record = single::original(&self.edge, TRANSPORT, caller, &body)
            .await
            .map_err(|failure| match failure {
                Failure::Invalid(problem) => invalid(&problem),
                Failure::Refused(refusal) => self.unavailable(&refusal),
            })?;
        let stored = CompatLocation::fetched(&record.location());
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
        let caller = self.caller(&request).await?;
        self.batch(caller, request.into_inner())
            .await
            .map(Response::new)
    }

    type IngestStream = ReplyStream;

    async fn ingest(
        &self,
        request: Request<Streaming<LocationBatch>>,
    ) -> Result<Response<Self::IngestStream>, Status> {
        // One token for the whole stream, checked as it opens.
        let caller = self.caller(&request).await?;
        caller.submits_any().map_err(|denied| denial(&denied))?;
        let inbound = request.into_inner();
        let service = self.clone();
        let shutdown = self.shutdown.clone();
        // One batch at a time, in order: a reply per batch; an error ends
        // the stream (the client opens another and resends what had no
        // reply).
        let replies = futures::stream::unfold(
            (inbound, service, false),
            move |(mut inbound, service, ended)| async move {
                if ended {
                    return None;
                }
                let next = tokio::select! {
                    next = inbound.message() => next,
                    () = service.shutdown.cancelled() => return None,
                };
                match next {
                    Ok(Some(batch)) => {
                        let reply = service.batch(caller, batch).await;
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
