//! The services a gRPC server answers, with the two every server on the
//! platform has: health (`grpc.health.v1`, one status for every service
//! served, by its full name, and for `""`) and reflection, in both
//! versions clients speak (`grpc.reflection.v1`, and `v1alpha`, the only
//! one some clients such as Python's `grpcio-reflection` know), listing
//! every service, health and reflection included.

use std::{collections::HashSet, convert::Infallible, sync::Arc};

use axum::response::IntoResponse;
use prost::Message as _;
use tonic::{
    body::Body,
    server::NamedService,
    service::{Routes, RoutesBuilder},
};
use tonic_health::{ServingStatus, server::HealthReporter};

/// Why the services cannot be served: a descriptor set that does not
/// decode, or one reflection cannot use.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    /// A descriptor set is not an encoded `FileDescriptorSet`.
    #[error("a file descriptor set does not decode: {0}")]
    Descriptor(#[from] prost::DecodeError),
    /// Reflection cannot be built from the descriptor sets.
    #[error("gRPC reflection cannot be built: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Services being collected for one server.
pub struct GrpcServices {
    routes: RoutesBuilder,
    names: Vec<&'static str>,
    descriptors: Vec<&'static [u8]>,
    max_message: usize,
}

impl GrpcServices {
    /// Services described by `descriptor` (an encoded `FileDescriptorSet`
    /// of their protos), whose messages are at most `max_message` bytes.
    /// Give each service the same `max_decoding_message_size`.
    pub fn new(descriptor: &'static [u8], max_message: usize) -> Self {
        Self {
            routes: RoutesBuilder::default(),
            names: Vec::new(),
            descriptors: vec![
                descriptor,
                tonic_health::pb::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            ],
            max_message,
        }
    }

    /// Adds a service.
    pub fn add<S>(&mut self, service: S) -> &mut Self
    where
        S: tower::Service<axum::http::Request<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: IntoResponse,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// The router to serve, with health and reflection added, and the
    /// health statuses, every one `NOT_SERVING` until set.
    pub async fn build(mut self) -> Result<(GrpcRouter, GrpcHealth), ServicesError> {
        let mut methods = HashSet::new();
        for encoded in &self.descriptors {
            let set = prost_types::FileDescriptorSet::decode(*encoded)?;
            for file in set.file {
                let package = file.package.unwrap_or_default();
                for service in file.service {
                    let service_name = match (package.as_str(), service.name()) {
                        ("", name) => name.to_owned(),
                        (package, name) => format!("{package}.{name}"),
                    };
                    for method in service.method {
                        methods.insert(format!("/{service_name}/{}", method.name()));
                    }
                }
            }
        }
        let max = self.max_message;
        let (reporter, health) = tonic_health::server::health_reporter();
        self.add(health.max_decoding_message_size(max));
        let reflection = |builder: tonic_reflection::server::Builder<'static>| {
            self.descriptors
                .iter()
                .fold(builder, |builder, descriptor| {
                    builder.register_encoded_file_descriptor_set(descriptor)
                })
                .include_reflection_service(false)
        };
        let v1 = reflection(tonic_reflection::server::Builder::configure()).build_v1()?;
        let v1alpha = reflection(tonic_reflection::server::Builder::configure()).build_v1alpha()?;
        self.add(v1.max_decoding_message_size(max));
        self.add(v1alpha.max_decoding_message_size(max));
        let health = GrpcHealth {
            reporter,
            names: self.names.into(),
        };
        health.set_serving(false).await;
        let router = GrpcRouter {
            routes: self.routes.routes().prepare(),
            methods: Arc::new(methods),
            max_message: max,
        };
        Ok((router, health))
    }
}

/// The services to serve, ready for [`super::serve`].
#[derive(Clone)]
pub struct GrpcRouter {
    pub(crate) routes: Routes,
    methods: Arc<HashSet<String>>,
    pub(crate) max_message: usize,
}

impl GrpcRouter {
    /// The service and method of a call to `path`, as metrics label them:
    /// `unknown` for a path no descriptor describes.
    pub(crate) fn labels(&self, path: &str) -> (String, String) {
        if self.methods.contains(path)
            && let Some((service, method)) = path.trim_start_matches('/').split_once('/')
        {
            return (service.to_owned(), method.to_owned());
        }
        ("unknown".to_owned(), "unknown".to_owned())
    }
}

/// The health statuses of every service served; cheap to clone.
#[derive(Clone)]
pub struct GrpcHealth {
    reporter: HealthReporter,
    names: Arc<[&'static str]>,
}

impl GrpcHealth {
    /// Sets every service, and the server as a whole (`""`), to `SERVING`
    /// or `NOT_SERVING`.
    pub async fn set_serving(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter.set_service_status("", status).await;
        for name in self.names.iter() {
            self.reporter.set_service_status(name, status).await;
        }
    }
}
