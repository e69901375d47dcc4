//! Credentials in `credential` (migration 0014): made, looked up by their
//! tokens' digests, listed and revoked, each in one statement.

use chrono::NaiveDateTime;
use tokio_postgres::Row;
use udaconnect_domain::{
    Credential, CredentialId, CredentialKind, Digest, NewCredential, PersonId, StoreError,
    Timestamp,
};

use super::{PgStore, rows::get, sql};

impl PgStore {
    /// See [`udaconnect_domain::Store::create_credential`].
    pub(super) async fn insert_credential(
        &self,
        new: &NewCredential,
    ) -> Result<Credential, StoreError> {
        let digest: &[u8] = &new.digest.0;
        let rows = self
            .query(
                "creating a credential",
                sql::CREATE_CREDENTIAL,
                &[&new.person_id, &new.kind.as_str(), &new.label, &digest],
            )
            .await?;
        match rows.first() {
            Some(row) => credential(row),
            None => Err(StoreError::UnknownPerson(new.person_id)),
        }
    }

    /// See [`udaconnect_domain::Store::credential_by_digest`].
    pub(super) async fn find_credential(
        &self,
        digest: &Digest,
    ) -> Result<Option<Credential>, StoreError> {
        let digest: &[u8] = &digest.0;
        let rows = self
            .query(
                "looking a credential up",
                sql::CREDENTIAL_BY_DIGEST,
                &[&digest],
            )
            .await?;
        rows.first().map(credential).transpose()
    }

    /// See [`udaconnect_domain::Store::credential`].
    pub(super) async fn read_credential(
        &self,
        id: CredentialId,
    ) -> Result<Option<Credential>, StoreError> {
        let rows = self
            .query("reading a credential", sql::CREDENTIAL, &[&id])
            .await?;
        rows.first().map(credential).transpose()
    }

    /// See [`udaconnect_domain::Store::credentials_of`].
    pub(super) async fn person_credentials(
        &self,
        person: PersonId,
    ) -> Result<Vec<Credential>, StoreError> {
        let rows = self
            .query("listing credentials", sql::CREDENTIALS_OF, &[&person])
            .await?;
        rows.iter().map(credential).collect()
    }

    /// See [`udaconnect_domain::Store::revoke_credential`].
    pub(super) async fn revoke(&self, id: CredentialId) -> Result<Option<Credential>, StoreError> {
        let rows = self
            .query("revoking a credential", sql::REVOKE_CREDENTIAL, &[&id])
            .await?;
        rows.first().map(credential).transpose()
    }
}

/// A credential from [`sql::CREDENTIAL`]'s columns.
fn credential(row: &Row) -> Result<Credential, StoreError> {
    let what = "credential";
    let kind: String = get(row, 2, what)?;
    let revoked: Option<NaiveDateTime> = get(row, 5, what)?;
    Ok(Credential {
        id: get(row, 0, what)?,
        person_id: get(row, 1, what)?,
        kind: CredentialKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("{what}: kind {kind:?}")))?,
        label: get(row, 3, what)?,
        created: Timestamp::from_naive(get(row, 4, what)?),
        revoked: revoked.map(Timestamp::from_naive),
    })
}
