//! Opaque page cursors.
//!
//! A cursor is the sort key of the last item of a page, as URL-safe base64
//! so that clients treat it as a token and do not build their own. A
//! connections cursor also carries a fingerprint of its query, so that a
//! cursor passed with other parameters is refused instead of silently
//! paging some other answer.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use platform::http::ApiError;
use udaconnect_domain::{
    ContactCursor, LocationCursor, PersonId, PersonOrder, Timestamp, meeting::MeetingCursor,
};

fn encode(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

fn decode(value: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(value.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(bad)
}

fn bad() -> ApiError {
    ApiError::bad_request("cursor is not one this API returned")
}

/// A persons cursor's prefix: the order it pages in.
fn person_prefix(order: PersonOrder) -> &'static str {
    match order {
        PersonOrder::Id => "p.",
        PersonOrder::Newest => "n.",
    }
}

/// The cursor after person `id`, in `order`.
pub fn person(id: PersonId, order: PersonOrder) -> String {
    encode(&format!("{}{id}", person_prefix(order)))
}

/// The person id a persons cursor stands for; refused if it was made for
/// another order.
pub fn parse_person(value: &str, order: PersonOrder) -> Result<PersonId, ApiError> {
    let text = decode(value)?;
    text.strip_prefix(person_prefix(order))
        .and_then(|id| id.parse().ok())
        .ok_or_else(bad)
}

/// The cursor after a location.
pub fn location(cursor: LocationCursor) -> String {
    encode(&format!("l.{}.{}", cursor.time.micros(), cursor.id))
}

/// The location a locations cursor stands for.
pub fn parse_location(value: &str) -> Result<LocationCursor, ApiError> {
    let text = decode(value)?;
    let rest = text.strip_prefix("l.").ok_or_else(bad)?;
    let (micros, id) = rest.split_once('.').ok_or_else(bad)?;
    Ok(LocationCursor {
        time: Timestamp::from_micros(micros.parse().map_err(|_| bad())?),
        id: id.parse().map_err(|_| bad())?,
    })
}

/// The cursor after a meeting.
pub fn meeting(cursor: MeetingCursor) -> String {
    encode(&format!("m.{}.{}", cursor.start.micros(), cursor.id))
}

/// The meeting a meetings cursor stands for.
pub fn parse_meeting(value: &str) -> Result<MeetingCursor, ApiError> {
    let text = decode(value)?;
    let rest = text.strip_prefix("m.").ok_or_else(bad)?;
    let (micros, id) = rest.split_once('.').ok_or_else(bad)?;
    Ok(MeetingCursor {
        start: Timestamp::from_micros(micros.parse().map_err(|_| bad())?),
        id: id.parse().map_err(|_| bad())?,
    })
}

/// The cursor after a contact, for the query `fingerprint` describes.
pub fn contact(cursor: ContactCursor, fingerprint: u64) -> String {
    encode(&format!(
        "c.{fingerprint:016x}.{}.{}",
        cursor.encounters, cursor.person_id
    ))
}

/// The contact a connections cursor stands for; refused if it was made for
/// another query.
pub fn parse_contact(value: &str, fingerprint: u64) -> Result<ContactCursor, ApiError> {
    let text = decode(value)?;
    let mut parts = text.strip_prefix("c.").ok_or_else(bad)?.split('.');
    let (Some(made_for), Some(encounters), Some(person_id), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if made_for != format!("{fingerprint:016x}") {
        return Err(ApiError::bad_request(
            "cursor belongs to another query: keep start, end, distance and within as they were",
        ));
    }
    Ok(ContactCursor {
        encounters: encounters.parse().map_err(|_| bad())?,
        person_id: person_id.parse().map_err(|_| bad())?,
    })
}

/// FNV-1a of `text`: a stable fingerprint (not a secret).
pub fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        for order in [PersonOrder::Id, PersonOrder::Newest] {
            assert_eq!(parse_person(&person(42, order), order).expect("valid"), 42);
        }
        assert!(parse_person(&person(42, PersonOrder::Id), PersonOrder::Newest).is_err());
        assert!(parse_person(&person(42, PersonOrder::Newest), PersonOrder::Id).is_err());
        let at = LocationCursor {
            time: Timestamp::from_micros(1_591_000_000_000_000),
            id: 7,
        };
        assert_eq!(parse_location(&location(at)).expect("valid"), at);
        let after = ContactCursor {
            encounters: 12,
            person_id: 3,
        };
        let token = contact(after, fingerprint("q1"));
        assert_eq!(
            parse_contact(&token, fingerprint("q1")).expect("valid"),
            after
        );
        assert!(parse_contact(&token, fingerprint("q2")).is_err());
        assert!(parse_person("not base64 at all!", PersonOrder::Id).is_err());
        assert!(parse_person(&location(at), PersonOrder::Id).is_err());
    }
}
