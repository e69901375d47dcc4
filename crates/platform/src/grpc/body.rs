//! A call's request body within two limits, enforced before tonic decodes
//! anything:
//!
//! - **stream idle**: while the server waits for the client's next bytes,
//!   the client has the stream-idle timeout to send some; then the body
//!   fails with `DEADLINE_EXCEEDED`, which ends the call with that status
//!   (a unary call waiting for its message, or a stream waiting for its
//!   next one). The timer runs only while the server waits: a handler busy
//!   with the previous message is not the client's delay;
//! - **message size**: each message's length prefix is read as it arrives;
//!   one longer than the limit fails the body with `RESOURCE_EXHAUSTED`
//!   before its bytes are buffered. tonic's own check (which would answer
//!   `OUT_OF_RANGE`) sees the same limit and never fires first.
//!
//! Either way nothing of the unfinished message reaches the handler.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;
use tonic::Status;

/// The boxed error tonic takes a request body's errors as.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The gRPC message prefix: a compression flag and a 4-byte length.
const PREFIX: usize = 5;

/// Where the reader is in the stream of length-prefixed messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Reading a prefix: `have` of its bytes so far.
    Prefix { bytes: [u8; PREFIX], have: usize },
    /// Inside a message: `left` bytes of it to come.
    Message { left: usize },
}

impl Framing {
    const START: Framing = Framing::Prefix {
        bytes: [0; PREFIX],
        have: 0,
    };

    /// Follows `data`; the length of the first message longer than `max`.
    fn follow(&mut self, mut data: &[u8], max: usize) -> Result<(), usize> {
        while !data.is_empty() {
            match self {
                Framing::Prefix { bytes, have } => {
                    let take = (PREFIX - *have).min(data.len());
                    bytes[*have..*have + take].copy_from_slice(&data[..take]);
                    *have += take;
                    data = &data[take..];
                    if *have == PREFIX {
                        let len = [bytes[1], bytes[2], bytes[3], bytes[4]];
                        let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
                        if len > max {
                            return Err(len);
                        }
                        *self = if len == 0 {
                            Framing::START
                        } else {
                            Framing::Message { left: len }
                        };
                    }
                }
                Framing::Message { left } => {
                    let take = (*left).min(data.len());
                    *left -= take;
                    data = &data[take..];
                    if *left == 0 {
                        *self = Framing::START;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A request body bounded by the stream-idle timeout and the message size
/// limit.
pub(crate) struct LimitedBody<B> {
    inner: B,
    stream_idle: Duration,
    max_message: usize,
    /// Armed while the server waits for the client.
    waiting: Option<Pin<Box<Sleep>>>,
    framing: Framing,
    failed: bool,
}

impl<B> LimitedBody<B> {
    pub(crate) fn new(inner: B, stream_idle: Duration, max_message: usize) -> Self {
        Self {
            inner,
            stream_idle,
            max_message,
            waiting: None,
            framing: Framing::START,
            failed: false,
        }
    }

    fn fail(&mut self, status: Status) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.failed = true;
        self.waiting = None;
        Poll::Ready(Some(Err(Box::new(status))))
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.waiting = None;
                if let Some(data) = frame.data_ref()
                    && let Err(len) = this.framing.follow(data, this.max_message)
                {
                    let max = this.max_message;
                    return this.fail(Status::resource_exhausted(format!(
                        "a message of {len} bytes is larger than the limit of {max} bytes"
                    )));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                this.waiting = None;
                Poll::Ready(Some(Err(err.into())))
            }
            Poll::Ready(None) => {
                this.waiting = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let stream_idle = this.stream_idle;
                let waiting = this
                    .waiting
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stream_idle)));
                if waiting.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.fail(Status::deadline_exceeded(format!(
                    "the client sent nothing for {}",
                    humantime::format_duration(stream_idle)
                )))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::VecDeque, future::poll_fn};

    use tokio::time::Instant;
    use tonic::Code;

    use super::*;

    /// A body that yields `chunks`, each after its delay, then ends (or,
    /// with `hang`, never does).
    struct Scripted {
        chunks: VecDeque<(Duration, Bytes)>,
        next: Option<Pin<Box<Sleep>>>,
        hang: bool,
    }

    impl Scripted {
        fn new(chunks: &[(u64, &[u8])], hang: bool) -> Self {
            Self {
                chunks: chunks
                    .iter()
                    .map(|(secs, bytes)| {
                        (Duration::from_secs(*secs), Bytes::copy_from_slice(bytes))
                    })
                    .collect(),
                next: None,
                hang,
            }
        }
    }

    impl Body for Scripted {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            let this = self.get_mut();
            let Some((delay, _)) = this.chunks.front() else {
                return if this.hang {
                    Poll::Pending
                } else {
                    Poll::Ready(None)
                };
            };
            let delay = *delay;
            let sleep = this
                .next
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.next = None;
            let (_, bytes) = this.chunks.pop_front().expect("a chunk");
            Poll::Ready(Some(Ok(Frame::data(bytes))))
        }
    }

    async fn next(body: &mut LimitedBody<Scripted>) -> Option<Result<Bytes, Status>> {
        let frame = poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await?;
        Some(
            frame
                .map(|frame| frame.into_data().unwrap_or_default())
                .map_err(|err| *err.downcast::<Status>().expect("a status")),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_sends_nothing_fails_the_body_after_the_stream_idle_timeout() {
        // 40 s, then 50 s between chunks: each within the 60 s allowed.
        let inner = Scripted::new(&[(40, b"\0\0\0\0\x01a"), (50, b"\0\0\0\0\x01b")], true);
        let mut body = LimitedBody::new(inner, Duration::from_secs(60), 1024);
        let started = Instant::now();
        assert!(next(&mut body).await.expect("a frame").is_ok());
        assert!(next(&mut body).await.expect("a frame").is_ok());
        assert_eq!(started.elapsed(), Duration::from_secs(90));
        let status = next(&mut body).await.expect("an error").expect_err("idle");
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(150));
        assert!(next(&mut body).await.is_none(), "ends after failing");
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_server_spends_between_reads_is_not_the_clients() {
        let inner = Scripted::new(&[(0, b"\0\0\0\0\x01a"), (0, b"\0\0\0\0\x01b")], false);
        let mut body = LimitedBody::new(inner, Duration::from_secs(60), 1024);
        assert!(next(&mut body).await.expect("a frame").is_ok());
        // The handler works on the first message for longer than the limit.
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert!(next(&mut body).await.expect("a frame").is_ok());
        assert!(next(&mut body).await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_longer_than_the_limit_fails_at_its_prefix() {
        // A 3-byte message, then a prefix announcing 2000 bytes split across
        // two chunks.
        let inner = Scripted::new(
            &[
                (0, b"\0\0\0\0\x03abc\0\0"),
                (0, b"\0\x07\xd0"),
                (0, b"rest"),
            ],
            false,
        );
        let mut body = LimitedBody::new(inner, Duration::from_secs(60), 1024);
        assert!(next(&mut body).await.expect("a frame").is_ok());
        let status = next(&mut body)
            .await
            .expect("an error")
            .expect_err("too long");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(status.message().contains("2000"), "{status:?}");
        assert!(next(&mut body).await.is_none());
    }

    #[test]
    fn framing_follows_messages_split_anywhere() {
        let stream = b"\0\0\0\0\x02ab\0\0\0\0\0\0\0\0\0\x01c";
        for split in 0..stream.len() {
            let mut framing = Framing::START;
            framing.follow(&stream[..split], 2).expect("within");
            framing.follow(&stream[split..], 2).expect("within");
            assert_eq!(framing, Framing::START, "split at {split}");
        }
        let mut framing = Framing::START;
        assert_eq!(framing.follow(b"\0\0\0\0\x03", 2), Err(3));
    }
}
