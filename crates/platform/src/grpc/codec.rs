//! The protobuf codec a gRPC server on the platform decodes requests with.
//!
//! tonic's own (`tonic_prost::ProstCodec`) answers a request that is not
//! valid protobuf with `INTERNAL`, which tells the client the server
//! failed; the bytes it sent are what is wrong, and a client should not
//! retry them: `INVALID_ARGUMENT`. Generated servers use this codec
//! through `tonic_prost_build`'s `codec_path("platform::grpc::ProstCodec")`;
//! encoding is tonic's.

use std::marker::PhantomData;

use tonic::{
    Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
};
use tonic_prost::ProstEncoder;

/// Encodes `T` and decodes `U` with prost; a message that does not decode
/// is `INVALID_ARGUMENT`.
#[derive(Debug, Clone, Copy)]
pub struct ProstCodec<T, U> {
    types: PhantomData<fn(T) -> U>,
}

impl<T, U> Default for ProstCodec<T, U> {
    fn default() -> Self {
        Self { types: PhantomData }
    }
}

impl<T, U> Codec for ProstCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder {
            message: PhantomData,
        }
    }
}

/// Decodes `U`; bytes that are not a `U` are the client's error.
#[derive(Debug, Clone, Copy)]
pub struct ProstDecoder<U> {
    message: PhantomData<fn() -> U>,
}

impl<U: prost::Message + Default> Decoder for ProstDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|err| {
            Status::invalid_argument(format!("the message is not valid protobuf: {err}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use tonic::{Code, codec::Streaming};

    use super::*;

    #[derive(Clone, PartialEq, prost::Message)]
    struct Point {
        #[prost(int32, tag = "1")]
        x: i32,
    }

    /// The first message of a request body holding `message`, framed.
    async fn decode(message: &[u8]) -> Result<Option<Point>, Status> {
        let len = u32::try_from(message.len()).expect("small");
        let mut framed = vec![0];
        framed.extend(len.to_be_bytes());
        framed.extend(message);
        let mut codec = ProstCodec::<Point, Point>::default();
        let mut stream =
            Streaming::new_request(codec.decoder(), axum::body::Body::from(framed), None, None);
        stream.message().await
    }

    #[tokio::test]
    async fn bytes_that_are_not_protobuf_are_the_clients_error() {
        // Field 1, varint 7.
        assert_eq!(
            decode(&[0x08, 0x07]).await.expect("decodes"),
            Some(Point { x: 7 })
        );
        // Field 1 as a varint whose bytes never end.
        let status = decode(&[0x08, 0xff, 0xff]).await.expect_err("not protobuf");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
}
