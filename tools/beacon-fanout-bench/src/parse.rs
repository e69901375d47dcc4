//! Reading `/events` responses without an HTTP client library.
//!
//! A worker holds thousands of streams on one thread, so each one is a plain
//! socket fed through this sans-I/O reader: the status line and headers,
//! the chunked transfer encoding, then SSE lines, keeping only what the
//! benchmark needs from each event (its sequence and `sent_at`). The reader
//! holds no buffer but a partial line, so an idle client costs a few bytes.

use std::time::{SystemTime, UNIX_EPOCH};

/// Longest line accepted (a message is well under 2 KB).
const MAX_LINE: usize = 16 * 1024;

/// What the stream said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// The response head arrived with status 200: the client is connected.
    Open,
    /// A message: its sequence and `sent_at` in microseconds since the epoch.
    Message { seq: u64, sent_at_us: u64 },
    /// An event that is not a message (a gap).
    Other,
    /// The server ended the body.
    End,
}

/// Why a stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The server answered something else than 200.
    #[error("unexpected status line: {0}")]
    Status(String),
    /// A line longer than [`MAX_LINE`].
    #[error("line longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// A chunk size that is not hexadecimal.
    #[error("bad chunk size")]
    ChunkSize,
    /// An event whose data is not a message with `seq` and `sent_at`.
    #[error("malformed event: {0}")]
    Event(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Status,
    Headers { chunked: bool },
    Body { chunked: bool },
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading the hexadecimal size (and skipping any extension).
    Size { size: u64, extension: bool },
    /// Inside a chunk with this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
}

/// One `/events` response being read.
#[derive(Debug)]
pub struct SseReader {
    phase: Phase,
    chunk: Chunk,
    line: Vec<u8>,
    /// The `id:` of the event being read.
    id: Option<u64>,
    /// The `data:` of the event being read, parsed.
    data: Option<(u64, u64)>,
    other: bool,
}

impl Default for SseReader {
    fn default() -> Self {
        Self {
            phase: Phase::Status,
            chunk: Chunk::Size {
                size: 0,
                extension: false,
            },
            line: Vec::new(),
            id: None,
            data: None,
            other: false,
        }
    }
}

impl SseReader {
    /// Feeds bytes read from the socket; `out` gets each item they complete.
    pub fn feed(&mut self, mut input: &[u8], out: &mut impl FnMut(Item)) -> Result<(), ParseError> {
        while !input.is_empty() {
            match self.phase {
                Phase::Status | Phase::Headers { .. } => {
                    if !self.take_line(&mut input)? {
                        return Ok(());
                    }
                    self.head_line(out)?;
                }
                Phase::Body { chunked: false } => {
                    self.body(input, out)?;
                    return Ok(());
                }
                Phase::Body { chunked: true } => {
                    input = self.chunked(input, out)?;
                }
                Phase::Done => return Ok(()),
            }
        }
        Ok(())
    }

    /// Moves bytes up to the next `\n` into `self.line`; `true` once a line
    /// is complete there (without its line ending).
    fn take_line(&mut self, input: &mut &[u8]) -> Result<bool, ParseError> {
        let (taken, complete) = match input.iter().position(|&byte| byte == b'\n') {
            Some(at) => (at + 1, true),
            None => (input.len(), false),
        };
        self.line.extend_from_slice(&input[..taken]);
        *input = &input[taken..];
        if self.line.len() > MAX_LINE {
            return Err(ParseError::LineTooLong);
        }
        if complete {
            while matches!(self.line.last(), Some(b'\n' | b'\r')) {
                self.line.pop();
            }
        }
        Ok(complete)
    }

    fn head_line(&mut self, out: &mut impl FnMut(Item)) -> Result<(), ParseError> {
        let line = std::mem::take(&mut self.line);
        match self.phase {
            Phase::Status => {
                if !line.starts_with(b"HTTP/1.1 200") && !line.starts_with(b"HTTP/1.0 200") {
                    return Err(ParseError::Status(
                        String::from_utf8_lossy(&line).into_owned(),
                    ));
                }
                self.phase = Phase::Headers { chunked: false };
            }
            Phase::Headers { chunked } if line.is_empty() => {
                self.phase = Phase::Body { chunked };
                out(Item::Open);
            }
            Phase::Headers { chunked } => {
                let lower = line.to_ascii_lowercase();
                let is_chunked = lower.starts_with(b"transfer-encoding:")
                    && lower.windows(7).any(|window| window == b"chunked");
                self.phase = Phase::Headers {
                    chunked: chunked || is_chunked,
                };
            }
            Phase::Body { .. } | Phase::Done => {}
        }
        // Keep the allocation for the next line.
        self.line = line;
        self.line.clear();
        Ok(())
    }

    /// Decodes as much chunked framing as `input` holds; returns the rest.
    fn chunked<'a>(
        &mut self,
        input: &'a [u8],
        out: &mut impl FnMut(Item),
    ) -> Result<&'a [u8], ParseError> {
        let Some((&first, rest)) = input.split_first() else {
            return Ok(input);
        };
        match self.chunk {
            Chunk::Size { size, extension } => {
                let size = match first {
                    b'\n' if size == 0 => {
                        self.phase = Phase::Done;
                        out(Item::End);
                        return Ok(&[]);
                    }
                    b'\n' => {
                        self.chunk = Chunk::Data(size);
                        return Ok(rest);
                    }
                    b'\r' => size,
                    _ if extension => size,
                    b';' => {
                        self.chunk = Chunk::Size {
                            size,
                            extension: true,
                        };
                        return Ok(rest);
                    }
                    digit => {
                        let value = char::from(digit)
                            .to_digit(16)
                            .ok_or(ParseError::ChunkSize)?;
                        size.checked_mul(16)
                            .and_then(|size| size.checked_add(u64::from(value)))
                            .ok_or(ParseError::ChunkSize)?
                    }
                };
                self.chunk = Chunk::Size { size, extension };
                Ok(rest)
            }
            Chunk::Data(left) => {
                let take = usize::try_from(left).map_or(input.len(), |left| left.min(input.len()));
                self.body(&input[..take], out)?;
                let left = left - take as u64;
                self.chunk = if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                };
                Ok(&input[take..])
            }
            Chunk::DataEnd => {
                if first == b'\n' {
                    self.chunk = Chunk::Size {
                        size: 0,
                        extension: false,
                    };
                }
                Ok(rest)
            }
        }
    }

    /// SSE lines from the decoded body.
    fn body(&mut self, mut input: &[u8], out: &mut impl FnMut(Item)) -> Result<(), ParseError> {
        while !input.is_empty() {
            if self.take_line(&mut input)? {
                let line = std::mem::take(&mut self.line);
                let result = self.sse_line(&line, out);
                self.line = line;
                self.line.clear();
                result?;
            }
        }
        Ok(())
    }

    fn sse_line(&mut self, line: &[u8], out: &mut impl FnMut(Item)) -> Result<(), ParseError> {
        if line.is_empty() {
            match (
                self.id.take(),
                self.data.take(),
                std::mem::take(&mut self.other),
            ) {
                (_, _, true) => out(Item::Other),
                (_, Some((seq, sent_at_us)), false) => out(Item::Message { seq, sent_at_us }),
                (Some(_), None, false) => out(Item::Other),
                (None, None, false) => {}
            }
            return Ok(());
        }
        if let Some(value) = line.strip_prefix(b"id: ") {
            self.id = std::str::from_utf8(value)
                .ok()
                .and_then(|id| id.parse().ok());
        } else if line.starts_with(b"event:") {
            self.other = true;
        } else if let Some(json) = line.strip_prefix(b"data: ")
            && !self.other
        {
            let message = message_fields(json)
                .ok_or_else(|| ParseError::Event(String::from_utf8_lossy(json).into_owned()))?;
            self.data = Some(message);
        }
        Ok(())
    }
}

/// `seq` and `sent_at` (µs since the epoch) of a message's JSON, found
/// without building a document: the benchmark reads hundreds of thousands
/// of them a second.
pub fn message_fields(json: &[u8]) -> Option<(u64, u64)> {
    let seq = field(json, b"\"seq\":")?;
    let digits = seq
        .iter()
        .position(|byte| !byte.is_ascii_digit())
        .unwrap_or(seq.len());
    let seq = std::str::from_utf8(&seq[..digits]).ok()?.parse().ok()?;
    let sent_at = field(json, b"\"sent_at\":\"")?;
    let end = sent_at.iter().position(|&byte| byte == b'"')?;
    let sent_at = humantime::parse_rfc3339(std::str::from_utf8(&sent_at[..end]).ok()?).ok()?;
    Some((seq, micros_since_epoch(sent_at)))
}

fn field<'a>(json: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let at = json.windows(name.len()).position(|window| window == name)?;
    Some(&json[at + name.len()..])
}

/// Microseconds since the Unix epoch (0 for a clock before it).
pub fn micros_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = r#"{"seq":7,"id":"a-7","text":"Hello world","sender":"s","sent_at":"2026-01-01T00:00:00.123Z","interval_ms":100}"#;
    const SENT_AT_US: u64 = 1_767_225_600_123_000;

    fn response() -> Vec<u8> {
        let mut body = Vec::new();
        for chunk in [
            "retry: 1000\n\n".to_owned(),
            format!("id: 7\ndata: {MESSAGE}\n\n"),
            ": keep-alive\n\n".to_owned(),
            "id: 9\nevent: gap\ndata: {\"event\":\"gap\",\"from\":8,\"to\":9}\n\n".to_owned(),
        ] {
            body.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
        }
        body.extend_from_slice(b"0\r\n\r\n");
        let mut response = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
            Transfer-Encoding: chunked\r\n\r\n"
            .to_vec();
        response.extend_from_slice(&body);
        response
    }

    fn read_in_pieces(bytes: &[u8], piece: usize) -> Vec<Item> {
        let mut reader = SseReader::default();
        let mut items = Vec::new();
        for part in bytes.chunks(piece) {
            reader
                .feed(part, &mut |item| items.push(item))
                .expect("parses");
        }
        items
    }

    #[test]
    fn reads_a_chunked_stream_split_anywhere() {
        let expected = vec![
            Item::Open,
            Item::Message {
                seq: 7,
                sent_at_us: SENT_AT_US,
            },
            Item::Other,
            Item::End,
        ];
        let bytes = response();
        for piece in [1, 2, 3, 7, 64, bytes.len()] {
            assert_eq!(read_in_pieces(&bytes, piece), expected, "pieces of {piece}");
        }
    }

    #[test]
    fn refuses_another_status() {
        let mut reader = SseReader::default();
        let err = reader
            .feed(b"HTTP/1.1 400 Bad Request\r\n\r\n", &mut |_| {})
            .expect_err("refused");
        assert!(matches!(err, ParseError::Status(line) if line.contains("400")));
    }

    #[test]
    fn refuses_an_event_without_sent_at() {
        let mut reader = SseReader::default();
        let err = reader
            .feed(
                b"HTTP/1.1 200 OK\r\n\r\nid: 1\ndata: {\"seq\":1}\n\n",
                &mut |_| {},
            )
            .expect_err("refused");
        assert!(matches!(err, ParseError::Event(_)));
    }

    #[test]
    fn finds_the_fields_of_a_message() {
        assert_eq!(message_fields(MESSAGE.as_bytes()), Some((7, SENT_AT_US)));
        assert_eq!(message_fields(br#"{"event":"gap","from":1,"to":2}"#), None);
    }
}
