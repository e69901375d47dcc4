//! The embedded store's credentials: a few per attendee, looked up by
//! their tokens' digests on every call that presents one.

use std::collections::HashMap;

use udaconnect_domain::{Credential, CredentialId, Digest, NewCredential, PersonId, Timestamp};

/// Every credential, by id, and the ids by digest.
#[derive(Default)]
pub(super) struct CredentialBook {
    by_id: HashMap<CredentialId, Credential>,
    by_digest: HashMap<Digest, CredentialId>,
    last_id: CredentialId,
}

impl CredentialBook {
    /// Stores `new` under the next id, made at `now`.
    pub(super) fn create(&mut self, new: &NewCredential, now: Timestamp) -> Credential {
        self.last_id += 1;
        let credential = Credential {
            id: self.last_id,
            person_id: new.person_id,
            kind: new.kind,
            label: new.label.clone(),
            created: now,
            revoked: None,
        };
        self.by_digest.insert(new.digest, credential.id);
        self.by_id.insert(credential.id, credential.clone());
        credential
    }

    pub(super) fn by_digest(&self, digest: &Digest) -> Option<Credential> {
        self.by_digest
            .get(digest)
            .and_then(|id| self.by_id.get(id))
            .cloned()
    }

    pub(super) fn get(&self, id: CredentialId) -> Option<Credential> {
        self.by_id.get(&id).cloned()
    }

    /// `person`'s, by id.
    pub(super) fn of(&self, person: PersonId) -> Vec<Credential> {
        let mut found: Vec<Credential> = self
            .by_id
            .values()
            .filter(|credential| credential.person_id == person)
            .cloned()
            .collect();
        found.sort_by_key(|credential| credential.id);
        found
    }

    /// Revokes `id` at `now` unless it is revoked already.
    pub(super) fn revoke(&mut self, id: CredentialId, now: Timestamp) -> Option<Credential> {
        let credential = self.by_id.get_mut(&id)?;
        credential.revoked.get_or_insert(now);
        Some(credential.clone())
    }

    /// Forgets every credential of `person` (erased).
    pub(super) fn remove_person(&mut self, person: PersonId) {
        self.by_id
            .retain(|_, credential| credential.person_id != person);
        let by_id = &self.by_id;
        self.by_digest.retain(|_, id| by_id.contains_key(id));
    }
}
