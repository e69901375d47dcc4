//! What each token presented lately stands for, so that a phone posting
//! every few seconds costs the database one lookup per `ttl`, not one per
//! position. Bounded: at most `max` tokens are held, and a token unknown
//! to the store is held too (a flood of made-up tokens costs one lookup
//! each per `ttl` at most, and evicts nothing for longer than that).
//! A credential revoked through this process is forgotten at once; one
//! revoked through another process is refused here within `ttl`.

use std::collections::HashMap;

use tokio::time::{Duration, Instant};
use udaconnect_domain::{Credential, CredentialId, Digest, PersonId};

/// Tokens' lookups, each trusted for `ttl`.
pub(super) struct Cache {
    entries: HashMap<Digest, (Instant, Option<Credential>)>,
    ttl: Duration,
    max: usize,
}

impl Cache {
    pub(super) fn new(ttl: Duration, max: usize) -> Self {
        Self {
            entries: HashMap::new(),
            ttl,
            max,
        }
    }

    /// What `digest` was looked up as, if that is recent enough to trust.
    pub(super) fn get(&self, digest: &Digest, now: Instant) -> Option<Option<Credential>> {
        self.entries
            .get(digest)
            .filter(|(at, _)| now.duration_since(*at) < self.ttl)
            .map(|(_, found)| found.clone())
    }

    /// Keeps `found` as what `digest` stands for, from `now`.
    pub(super) fn put(&mut self, digest: Digest, found: Option<Credential>, now: Instant) {
        if self.max == 0 || self.ttl.is_zero() {
            return;
        }
        if self.entries.len() >= self.max && !self.entries.contains_key(&digest) {
            let ttl = self.ttl;
            self.entries
                .retain(|_, (at, _)| now.duration_since(*at) < ttl);
            if self.entries.len() >= self.max {
                self.entries.clear();
            }
        }
        self.entries.insert(digest, (now, found));
    }

    /// Forgets credential `id` (just revoked here).
    pub(super) fn forget(&mut self, id: CredentialId) {
        self.entries
            .retain(|_, (_, found)| found.as_ref().is_none_or(|credential| credential.id != id));
    }

    /// Forgets every credential of `person` (erased).
    pub(super) fn forget_person(&mut self, person: PersonId) {
        self.entries.retain(|_, (_, found)| {
            found
                .as_ref()
                .is_none_or(|credential| credential.person_id != person)
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use udaconnect_domain::{CredentialKind, Timestamp};

    use super::*;

    fn credential(id: CredentialId) -> Credential {
        Credential {
            id,
            person_id: 1,
            kind: CredentialKind::Device,
            label: "phone".into(),
            created: Timestamp::from_micros(1_600_000_000_000_000),
            revoked: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn entries_are_trusted_for_the_ttl_only() {
        let mut cache = Cache::new(Duration::from_secs(5), 10);
        let start = Instant::now();
        cache.put(Digest([1; 32]), Some(credential(7)), start);
        cache.put(Digest([2; 32]), None, start);
        assert_eq!(
            cache.get(&Digest([1; 32]), start + Duration::from_millis(4_999)),
            Some(Some(credential(7)))
        );
        assert_eq!(cache.get(&Digest([2; 32]), start), Some(None));
        assert_eq!(
            cache.get(&Digest([1; 32]), start + Duration::from_secs(5)),
            None
        );
        assert_eq!(cache.get(&Digest([3; 32]), start), None);
    }

    #[tokio::test(start_paused = true)]
    async fn it_never_holds_more_than_its_bound() {
        let mut cache = Cache::new(Duration::from_secs(5), 3);
        let start = Instant::now();
        for n in 0..3 {
            cache.put(Digest([n; 32]), None, start);
        }
        // Full of fresh entries: they go, the new one stays.
        cache.put(Digest([9; 32]), Some(credential(1)), start);
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&Digest([9; 32]), start).is_some());
        // Full with stale entries among them: only those go.
        cache.put(Digest([10; 32]), None, start);
        cache.put(Digest([11; 32]), None, start + Duration::from_secs(6));
        cache.put(Digest([12; 32]), None, start + Duration::from_secs(6));
        cache.put(Digest([13; 32]), None, start + Duration::from_secs(6));
        assert_eq!(cache.len(), 3);
        assert!(
            cache
                .get(&Digest([11; 32]), start + Duration::from_secs(6))
                .is_some()
        );
        assert!(
            cache
                .get(&Digest([13; 32]), start + Duration::from_secs(6))
                .is_some()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_revoked_credential_is_forgotten_at_once() {
        let mut cache = Cache::new(Duration::from_secs(5), 10);
        let start = Instant::now();
        cache.put(Digest([1; 32]), Some(credential(7)), start);
        cache.put(Digest([2; 32]), Some(credential(8)), start);
        cache.forget(7);
        assert_eq!(cache.get(&Digest([1; 32]), start), None);
        assert!(cache.get(&Digest([2; 32]), start).is_some());
        cache.forget_person(1);
        assert_eq!(cache.get(&Digest([2; 32]), start), None, "person 1's");
    }

    #[test]
    fn a_zero_ttl_or_bound_holds_nothing() {
        let now = Instant::now();
        let mut off = Cache::new(Duration::ZERO, 10);
        off.put(Digest([1; 32]), None, now);
        assert_eq!(off.len(), 0);
        let mut none = Cache::new(Duration::from_secs(5), 0);
        none.put(Digest([1; 32]), None, now);
        assert_eq!(none.len(), 0);
    }
}
