//! The message limit: `--max-body-size` bounds each gRPC message, as it bounds a REST body.
//!
//! gRPC frames every message with five bytes: a compressed flag and its length (big-endian
//! `u32`). [`Limited`] reads those headers as the body's data frames pass and ends the call
//! with RESOURCE_EXHAUSTED naming the flag as soon as a header declares more than the limit,
//! before any of that message is buffered. tonic's decoder has its own limit (4 MiB by
//! default, OUT_OF_RANGE, naming no flag); serve sets it to the same value, so it only
//! bounds what a compressed message decompresses to.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// A gRPC request body whose messages may not exceed a limit.
pub struct Limited<B> {
    inner: B,
    limit: usize,
    /// The header being read: its bytes so far.
    header: [u8; 5],
    have: usize,
    /// Bytes of the current message still to pass.
    remaining: u64,
    failed: bool,
}

impl<B> Limited<B> {
    /// `inner`, its messages bounded by `limit` bytes.
    pub fn new(inner: B, limit: usize) -> Self {
        Limited {
            inner,
            limit,
            header: [0; 5],
            have: 0,
            remaining: 0,
            failed: false,
        }
    }

    /// Walks `data`'s message headers; the first length past the limit, if any.
    fn scan(&mut self, mut data: &[u8]) -> Option<u64> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                data = &data[n..];
                self.remaining -= n as u64;
                continue;
            }
            let n = (5 - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == 5 {
                self.have = 0;
                let len = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]);
                if len as u64 > self.limit as u64 {
                    return Some(len.into());
                }
                self.remaining = len.into();
            }
        }
        None
    }
}

/// The error a message past the limit ends its call with.
pub fn too_large(len: u64, limit: usize) -> tonic::Status {
    tonic::Status::resource_exhausted(format!(
        "the message has {len} bytes, more than the {limit} bytes --max-body-size allows; \
         send fewer rows per call or raise --max-body-size"
    ))
}

impl<B> Body for Limited<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<serve_app::BodyError>,
{
    type Data = Bytes;
    type Error = serve_app::BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref()
            && let Some(len) = this.scan(data)
        {
            this.failed = true;
            return Poll::Ready(Some(Err(Box::new(too_large(len, this.limit)))));
        }
        Poll::Ready(Some(Ok(frame)))
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
    use super::*;
    use http_body_util::{BodyExt, Full};

    fn framed(len: u32) -> Vec<u8> {
        let mut v = vec![0];
        v.extend_from_slice(&len.to_be_bytes());
        v.extend(std::iter::repeat_n(7u8, len as usize));
        v
    }

    #[test]
    fn headers_split_across_frames_are_read_whole() {
        let mut l = Limited::new(Full::new(Bytes::new()), 10);
        let mut bytes = framed(10);
        bytes.extend(framed(3));
        bytes.extend(framed(11));
        // Fed a byte at a time: the third message's header is found wherever it is split.
        let found = bytes.iter().position(|b| l.scan(&[*b]).is_some());
        assert_eq!(
            found,
            Some(10 + 5 + 3 + 5 + 4),
            "the last byte of the third header"
        );
    }

    #[tokio::test]
    async fn a_message_past_the_limit_ends_the_body_with_resource_exhausted() {
        let mut bytes = framed(4);
        bytes.extend(framed(100));
        let body = Limited::new(Full::new(Bytes::from(bytes)), 99);
        let err = body.collect().await.unwrap_err();
        let status = err.downcast::<tonic::Status>().unwrap();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("--max-body-size"), "{status:?}");
        assert!(status.message().contains("100 bytes"), "{status:?}");

        let ok = Limited::new(Full::new(Bytes::from(framed(99))), 99);
        assert_eq!(ok.collect().await.unwrap().to_bytes().len(), 104);
    }
}
