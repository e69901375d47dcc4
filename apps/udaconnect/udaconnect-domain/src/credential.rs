//! Who may call UdaConnect: the credentials the organiser hands out, one
//! per attendee's link and one per phone, each for one person.
//!
//! A credential is an unguessable token that only its holder ever sees;
//! the store keeps its [`Digest`] (SHA-256 of the token) and looks a
//! caller up by the digest of what it presents, so that a copy of the
//! database gives no one a working token. Revoking one keeps the row (its
//! holder sees it listed as revoked) and refuses it from then on.

use std::fmt;

use crate::{model::PersonId, time::Timestamp};

/// A credential's id: what the API lists and revokes it by.
pub type CredentialId = i64;

/// The most characters of a credential's label.
pub const MAX_LABEL: usize = 100;

/// What a credential lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// An attendee's link: their own person, locations, meetings and
    /// connections.
    Attendee,
    /// A phone: submits positions for its own person, nothing else.
    Device,
}

impl CredentialKind {
    /// The name stored and shown: `attendee` or `device`.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Attendee => "attendee",
            CredentialKind::Device => "device",
        }
    }

    /// The kind `name` stands for.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "attendee" => Some(CredentialKind::Attendee),
            "device" => Some(CredentialKind::Device),
            _ => None,
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// SHA-256 of a token: what the store keeps and looks callers up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl fmt::Debug for Digest {
    // Never printed whole: a digest is as good as its token for a lookup.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest(..)")
    }
}

/// A credential as stored, without its token (which is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Its id.
    pub id: CredentialId,
    /// Whose.
    pub person_id: PersonId,
    /// What it lets its holder do.
    pub kind: CredentialKind,
    /// A name the organiser gave it ("Ana's phone"), shown in lists.
    pub label: String,
    /// When it was made.
    pub created: Timestamp,
    /// When it was revoked, if it was: refused from then on.
    pub revoked: Option<Timestamp>,
}

impl Credential {
    /// Whether it is still honoured.
    pub fn is_active(&self) -> bool {
        self.revoked.is_none()
    }
}

/// A credential to store: the digest of a token just made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCredential {
    /// Whose.
    pub person_id: PersonId,
    /// What it lets its holder do.
    pub kind: CredentialKind,
    /// Its name, at most [`MAX_LABEL`] characters, not empty.
    pub label: String,
    /// SHA-256 of its token.
    pub digest: Digest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_by_name() {
        for kind in [CredentialKind::Attendee, CredentialKind::Device] {
            assert_eq!(CredentialKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(CredentialKind::parse("organiser"), None);
    }

    #[test]
    fn a_digest_is_never_printed() {
        assert_eq!(format!("{:?}", Digest([7; 32])), "Digest(..)");
    }
}
