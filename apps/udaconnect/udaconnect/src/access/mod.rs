//! Who may see and do what: the organiser's token (a setting), attendees'
//! links and phones' tokens (credentials in the store, [`token`]), the
//! rules each kind of caller is held to ([`caller`]), and the open API of
//! the embedded demo, on which nobody needs a token, as with the
//! original.
//!
//! Every transport asks [`Access::caller`] who presented a token: HTTP
//! handlers through the [`Caller`] extractor, gRPC and the phones' apps
//! with the token they carry. A token is looked up by its digest, and
//! what it stands for is kept for a few seconds ([`cache`]).

mod cache;
pub mod caller;
pub mod token;

use std::{
    borrow::Cow,
    sync::{Arc, Mutex, PoisonError},
};

use axum::{
    extract::Request,
    http::{HeaderValue, Uri, header},
};
use prometheus_client::{metrics::counter::Counter, registry::Registry};
use tokio::time::Instant;
use udaconnect_domain::{Credential, CredentialId, CredentialKind, Digest, Store};

use self::cache::Cache;
pub use self::caller::{Caller, Denied, Holder};
use crate::{cli::AccessConfig, urlencoded};

/// The rules in force and the credentials' lookups; cheap to clone.
#[derive(Clone)]
pub struct Access {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    organiser: Option<Digest>,
    open: bool,
    public_url: Option<String>,
    cache: Mutex<Cache>,
    /// How often a long-lived stream's token is checked again.
    recheck: std::time::Duration,
    refused: Counter,
}

impl Access {
    /// The rules `config` sets, credentials looked up in `store`; the
    /// refusals counted in `registry`.
    pub fn new(store: Arc<dyn Store>, config: &AccessConfig, registry: &mut Registry) -> Self {
        let refused = Counter::default();
        registry.register(
            "access_bad_tokens",
            "Calls refused for a token that is unknown or revoked",
            refused.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                store,
                organiser: config.organiser_token.as_deref().map(token::digest),
                open: config.open_api,
                public_url: config.public_url.clone(),
                cache: Mutex::new(Cache::new(config.cache_ttl, config.cache_max)),
                recheck: config.cache_ttl.max(std::time::Duration::from_secs(1)),
                refused,
            }),
        }
    }

    /// Whether everyone may read and write everything (the original's
    /// API, and the embedded demo's).
    pub fn is_open(&self) -> bool {
        self.inner.open
    }

    /// Where phones reach this server, if set (else the request says).
    pub fn public_url(&self) -> Option<&str> {
        self.inner.public_url.as_deref()
    }

    /// Who presented `token` (none: nobody, or on an open API the
    /// organiser).
    pub async fn caller(&self, token: Option<&str>) -> Result<Caller, Denied> {
        let Some(token) = token else {
            return Ok(if self.inner.open {
                Caller::Organiser
            } else {
                Caller::Nobody
            });
        };
        if token.len() > token::MAX_CHARS {
            return Err(self.bad_token());
        }
        let digest = token::digest(token);
        if self
            .inner
            .organiser
            .as_ref()
            .is_some_and(|organiser| token::same(organiser, &digest))
        {
            return Ok(Caller::Organiser);
        }
        match self.credential(&digest).await? {
            Some(credential) if credential.is_active() => {
                let holder = Holder {
                    person: credential.person_id,
                    credential: credential.id,
                };
                Ok(match credential.kind {
                    CredentialKind::Attendee => Caller::Attendee(holder),
                    CredentialKind::Device => Caller::Device(holder),
                })
            }
            _ => Err(self.bad_token()),
        }
    }

    /// Forgets every credential of `person`, just erased, so that theirs
    /// are refused here at once (other processes refuse them within the
    /// cache's time; their edges refuse the person's positions anyway).
    pub fn forget_person(&self, person: udaconnect_domain::PersonId) {
        self.cache().forget_person(person);
    }

    /// Resolves once `token` is refused (revoked, or its person erased),
    /// checked again every `UDACONNECT_AUTH_CACHE` (at least every
    /// second): a long-lived stream opened with it ends then. Without a
    /// token, never.
    pub async fn refused(&self, token: Option<String>) {
        let Some(token) = token else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(self.inner.recheck).await;
            if let Err(Denied::Unauthenticated(_)) = self.caller(Some(&token)).await {
                return;
            }
        }
    }

    /// Counts a call refused for a token that is unknown or revoked.
    fn bad_token(&self) -> Denied {
        self.inner.refused.inc();
        Denied::Unauthenticated(caller::BAD_TOKEN)
    }

    /// Forgets credential `id`, just revoked, so that it is refused here
    /// at once (other processes refuse it within the cache's time).
    pub fn forget(&self, id: CredentialId) {
        self.cache().forget(id);
    }

    /// The credential of `digest`: from the cache if recent, else from
    /// the store (and kept).
    async fn credential(&self, digest: &Digest) -> Result<Option<Credential>, Denied> {
        if let Some(found) = self.cache().get(digest, Instant::now()) {
            return Ok(found);
        }
        let found = self
            .inner
            .store
            .credential_by_digest(digest)
            .await
            .map_err(|err| {
                tracing::warn!(error = %err, "cannot look a credential up");
                Denied::Unavailable
            })?;
        self.cache().put(*digest, found.clone(), Instant::now());
        Ok(found)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Moves a token given as the query's `access_token` (where a client
/// cannot set headers: a browser's `EventSource`, a link) into the
/// `Authorization` header, so that handlers see one place and their own
/// parameters only. A header already there wins.
pub async fn query_token(mut request: Request) -> Request {
    let Some(query) = request.uri().query() else {
        return request;
    };
    let mut token = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("access_token=") {
            Some(value) => {
                token = Some(value.to_owned());
                false
            }
            None => true,
        })
        .collect();
    let Some(token) = token else {
        return request;
    };
    let mut parts = request.uri().clone().into_parts();
    let path = request.uri().path();
    let rebuilt = if rest.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", rest.join("&"))
    };
    parts.path_and_query = rebuilt.parse().ok();
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    let decoded = urlencoded::decode(&token).map_or(Cow::Borrowed(token.as_str()), |token| token);
    if !request.headers().contains_key(header::AUTHORIZATION)
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {decoded}"))
    {
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    request
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    async fn moved(uri: &str, header: Option<&str>) -> (String, Option<String>) {
        let mut request = Request::builder().uri(uri);
        if let Some(value) = header {
            request = request.header(header::AUTHORIZATION, value);
        }
        let request = query_token(request.body(Body::empty()).expect("a request")).await;
        (
            request.uri().to_string(),
            request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
        )
    }

    #[tokio::test]
    async fn a_query_token_moves_into_the_header() {
        assert_eq!(
            moved(
                "/api/v2/persons/1/meetings/live?access_token=uca_x%2Dy&start=2020",
                None
            )
            .await,
            (
                "/api/v2/persons/1/meetings/live?start=2020".to_owned(),
                Some("Bearer uca_x-y".to_owned())
            )
        );
        assert_eq!(
            moved("/api/v2/stats?access_token=abc", None).await,
            ("/api/v2/stats".to_owned(), Some("Bearer abc".to_owned()))
        );
        assert_eq!(
            moved("/api/v2/stats?access_token=abc", Some("Bearer mine")).await,
            ("/api/v2/stats".to_owned(), Some("Bearer mine".to_owned()))
        );
        assert_eq!(
            moved("/api/v2/stats?limit=3", None).await,
            ("/api/v2/stats?limit=3".to_owned(), None)
        );
    }
}
