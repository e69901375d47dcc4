//! One URL-encoded component decoded, strictly, for every place that
//! reads a query or a form itself: the OsmAnd senders' parameters and a
//! token given as the query's `access_token`.

use std::borrow::Cow;

/// Why a component cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A `%` without two hexadecimal digits after it.
    #[error("a % is not followed by two hexadecimal digits")]
    BadEscape,
    /// Escaped bytes that are not UTF-8.
    #[error("a %-encoded value is not UTF-8")]
    NotUtf8,
}

/// `component` decoded: `+` is a space, `%XX` a byte, the bytes UTF-8.
pub fn decode(component: &str) -> Result<Cow<'_, str>, DecodeError> {
    if !component.contains(['+', '%']) {
        return Ok(Cow::Borrowed(component));
    }
    let mut bytes = Vec::with_capacity(component.len());
    let mut rest = component.as_bytes().iter();
    while let Some(&byte) = rest.next() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex =
                    |digit: Option<&u8>| digit.and_then(|digit| char::from(*digit).to_digit(16));
                let (Some(high), Some(low)) = (hex(rest.next()), hex(rest.next())) else {
                    return Err(DecodeError::BadEscape);
                };
                bytes.extend(u8::try_from(high * 16 + low).ok());
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes)
        .map(Cow::Owned)
        .map_err(|_| DecodeError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_decode_strictly() {
        assert_eq!(decode("plain").as_deref(), Ok("plain"));
        assert_eq!(decode("a+b%2Dc%C3%A9").as_deref(), Ok("a b-cé"));
        assert_eq!(decode("50%"), Err(DecodeError::BadEscape));
        assert_eq!(decode("%zz"), Err(DecodeError::BadEscape));
        assert_eq!(decode("%C3"), Err(DecodeError::NotUtf8));
    }
}
