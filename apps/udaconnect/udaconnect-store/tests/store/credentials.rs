//! Credentials: both stores make, find by digest, list and revoke them
//! alike, refuse one for a person who does not exist, and keep the digest
//! unique (two tokens with one digest cannot both be stored).

use udaconnect_domain::{CredentialKind, Digest, NewCredential, NewPerson, Store, StoreError};
use udaconnect_store::MemoryStore;

use crate::helpers::migrated;

fn new(person_id: i32, kind: CredentialKind, label: &str, digest: u8) -> NewCredential {
    NewCredential {
        person_id,
        kind,
        label: label.to_owned(),
        digest: Digest([digest; 32]),
    }
}

async fn credentials_are_kept_and_revoked(store: &dyn Store) {
    let kind = store.kind();
    let person = store
        .create_person(&NewPerson {
            first_name: "Ana".into(),
            last_name: "Lima".into(),
            company_name: "Acme".into(),
        })
        .await
        .expect("a person");
    let other = store
        .create_person(&NewPerson {
            first_name: "Bo".into(),
            last_name: "Ek".into(),
            company_name: "Acme".into(),
        })
        .await
        .expect("another person");

    let link = store
        .create_credential(&new(person.id, CredentialKind::Attendee, "link", 1))
        .await
        .expect("a link");
    let phone = store
        .create_credential(&new(person.id, CredentialKind::Device, "Ana's phone", 2))
        .await
        .expect("a phone");
    store
        .create_credential(&new(other.id, CredentialKind::Device, "Bo's phone", 3))
        .await
        .expect("another phone");
    assert_ne!(link.id, phone.id, "{kind}");
    assert_eq!(
        (phone.person_id, phone.kind, phone.label.as_str()),
        (person.id, CredentialKind::Device, "Ana's phone"),
        "{kind}"
    );
    assert!(phone.is_active(), "{kind}");

    let found = store
        .credential_by_digest(&Digest([2; 32]))
        .await
        .expect("looked up");
    assert_eq!(found.as_ref(), Some(&phone), "{kind}");
    assert_eq!(
        store
            .credential_by_digest(&Digest([9; 32]))
            .await
            .expect("looked up"),
        None,
        "{kind}"
    );
    assert_eq!(
        store.credentials_of(person.id).await.expect("listed"),
        [link.clone(), phone.clone()],
        "{kind}"
    );

    let revoked = store
        .revoke_credential(phone.id)
        .await
        .expect("revoked")
        .expect("it exists");
    let when = revoked.revoked.expect("revoked, with when");
    assert!(!revoked.is_active(), "{kind}");
    let again = store
        .revoke_credential(phone.id)
        .await
        .expect("revoked again")
        .expect("it exists");
    assert_eq!(
        again.revoked,
        Some(when),
        "{kind}: revoked once, when first"
    );
    assert_eq!(
        store
            .credential_by_digest(&Digest([2; 32]))
            .await
            .expect("looked up")
            .map(|credential| credential.is_active()),
        Some(false),
        "{kind}: found, as revoked"
    );
    assert_eq!(
        store.credential(phone.id).await.expect("read"),
        Some(again),
        "{kind}"
    );
    assert_eq!(store.revoke_credential(9_999).await.expect("no such"), None);

    let unknown = store
        .create_credential(&new(9_999, CredentialKind::Device, "nobody's", 4))
        .await;
    assert_eq!(unknown, Err(StoreError::UnknownPerson(9_999)), "{kind}");
}

#[tokio::test]
async fn both_stores_keep_and_revoke_credentials() {
    let db = migrated().await;
    credentials_are_kept_and_revoked(&db.store).await;
    credentials_are_kept_and_revoked(&MemoryStore::new()).await;
}

#[tokio::test]
async fn a_digest_is_stored_once() {
    let db = migrated().await;
    let person = db
        .store
        .create_person(&NewPerson {
            first_name: "Ana".into(),
            last_name: "Lima".into(),
            company_name: "Acme".into(),
        })
        .await
        .expect("a person");
    db.store
        .create_credential(&new(person.id, CredentialKind::Device, "one", 5))
        .await
        .expect("the first");
    let twice = db
        .store
        .create_credential(&new(person.id, CredentialKind::Device, "two", 5))
        .await;
    assert!(
        matches!(&twice, Err(StoreError::Rejected { code, .. }) if code == "23505"),
        "{twice:?}"
    );
}
