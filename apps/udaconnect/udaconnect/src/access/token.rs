//! Tokens: made from 256 random bits, shown once, and known afterwards
//! only by their SHA-256 digest, which is what the store keeps and what a
//! caller is looked up by.
//!
//! A token is `uca_` (an attendee's link) or `ucd_` (a phone) followed by
//! 43 URL-safe base64 characters: it fits in a URL, an HTTP header, a
//! Basic password and a Traccar device identifier as it is.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::Rng;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use udaconnect_domain::{CredentialKind, Digest};

/// Random bytes in a token.
const RANDOM_BYTES: usize = 32;
/// The fewest characters the organiser's token may have: 128 bits of
/// entropy at least, as base64 or hex characters carry 4 to 6 bits each.
pub const MIN_ORGANISER_CHARS: usize = 32;
/// The most characters of a token presented: longer is no token.
pub const MAX_CHARS: usize = 256;

/// A token just made, with what the store keeps of it.
pub struct Minted {
    /// The token, for its holder's eyes only.
    pub token: String,
    /// Its digest.
    pub digest: Digest,
}

/// A new token for a credential of `kind`.
pub fn mint(kind: CredentialKind) -> Minted {
    let mut random = [0_u8; RANDOM_BYTES];
    rand::rng().fill_bytes(&mut random);
    let prefix = match kind {
        CredentialKind::Attendee => "uca_",
        CredentialKind::Device => "ucd_",
    };
    let token = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random));
    let digest = digest(&token);
    Minted { token, digest }
}

/// SHA-256 of `token`.
pub fn digest(token: &str) -> Digest {
    Digest(Sha256::digest(token.as_bytes()).into())
}

/// Whether two digests are equal, in time that does not depend on where
/// they differ.
pub fn same(a: &Digest, b: &Digest) -> bool {
    a.0.ct_eq(&b.0).into()
}

/// Checks the organiser's token as set: long enough to be unguessable,
/// printable, no spaces.
pub fn check_organiser(token: &str) -> Result<(), String> {
    let chars = token.chars().count();
    if chars < MIN_ORGANISER_CHARS {
        return Err(format!(
            "is {chars} characters long; it needs at least {MIN_ORGANISER_CHARS} \
             (e.g. `openssl rand -hex 32`)"
        ));
    }
    if chars > MAX_CHARS {
        return Err(format!("is longer than {MAX_CHARS} characters"));
    }
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err("holds a space or a character that is not printable ASCII".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_distinct_url_safe_and_known_by_their_digest() {
        let one = mint(CredentialKind::Device);
        let two = mint(CredentialKind::Device);
        assert_ne!(one.token, two.token);
        assert!(one.token.starts_with("ucd_"), "{}", one.token);
        assert!(mint(CredentialKind::Attendee).token.starts_with("uca_"));
        assert_eq!(one.token.len(), 4 + 43);
        assert!(
            one.token[4..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert!(same(&one.digest, &digest(&one.token)));
        assert!(!same(&one.digest, &two.digest));
    }

    #[test]
    fn the_digest_is_sha256() {
        // SHA-256("abc"), FIPS 180-2's first example.
        assert_eq!(
            digest("abc").0[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "the first bytes of SHA-256(\"abc\")"
        );
    }

    #[test]
    fn the_organisers_token_must_be_long_and_plain() {
        assert!(check_organiser(&"a".repeat(32)).is_ok());
        assert!(check_organiser("short").is_err());
        assert!(check_organiser(&format!("{} x", "a".repeat(32))).is_err());
        assert!(check_organiser(&"é".repeat(40)).is_err());
        assert!(check_organiser(&"a".repeat(300)).is_err());
    }
}
