//! Reading a request body: bounded in time and size, decompressed, before the app sees it.
//!
//! `--max-body-size` applies to what the app receives, so to the body after decompression:
//! a small gzip body cannot expand into gigabytes inside a worker. Declared lengths are
//! checked before reading, and nothing is allocated from a number the client sent.

use std::io::Read;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use http::{HeaderValue, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serve_app::{Response, error_response};

use serve_settings::Values;

/// Bodies smaller than this are decompressed on the I/O thread; larger ones off it.
const INLINE_DECOMPRESS: usize = 256 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

/// Reads the whole body, applying the limits; on success the request's headers describe the
/// decompressed body.
#[allow(clippy::result_large_err)]
pub(crate) async fn read(
    parts: &mut http::request::Parts,
    body: Incoming,
    cfg: &Values,
) -> Result<Bytes, Response> {
    let encoding = encoding(&parts.headers)?;
    let limit = if cfg.max_body_size == 0 {
        usize::MAX
    } else {
        usize::try_from(cfg.max_body_size).unwrap_or(usize::MAX)
    };
    if let Some(len) = declared_length(&parts.headers).filter(|&len| len > limit as u64) {
        return Err(too_large(cfg, &format!("{len} bytes")));
    }
    let collect = gather(Limited::new(body, limit), cfg.min_rate);
    let raw = match tokio::time::timeout(cfg.body_timeout, collect).await {
        Err(_) => {
            return Err(error_response(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    cfg.body_timeout.as_secs_f64()
                ),
            ));
        }
        Ok(Err(Gathered::Slow { bytes, secs })) => {
            return Err(error_response(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body arrives slower than --min-rate ({} bytes/s): {bytes} \
                     bytes in {secs:.1} s",
                    cfg.min_rate
                ),
            ));
        }
        Ok(Err(Gathered::Body(e))) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(too_large(cfg, &format!("more than {limit} bytes")));
        }
        Ok(Err(Gathered::Body(e))) => {
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            ));
        }
        Ok(Ok(raw)) => raw,
    };
    if encoding == Encoding::Identity {
        return Ok(raw);
    }
    let decoded = if raw.len() <= INLINE_DECOMPRESS {
        decompress(encoding, &raw, limit)
    } else {
        tokio::task::spawn_blocking(move || decompress(encoding, &raw, limit))
            .await
            .unwrap_or_else(|e| Err(Failure::Corrupt(e.to_string())))
    };
    let decoded = match decoded {
        Ok(d) => d,
        Err(Failure::TooLarge) => {
            return Err(too_large(
                cfg,
                &format!("more than {limit} bytes after decompression"),
            ));
        }
        Err(Failure::Corrupt(e)) => {
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                format!("cannot decompress the {encoding:?} request body: {e}").to_lowercase(),
            ));
        }
    };
    parts.headers.remove(CONTENT_ENCODING);
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(decoded.len()));
    Ok(Bytes::from(decoded))
}

/// The body's data frames as one buffer: a body of one frame (most are) is that frame, not
/// a copy; trailers are ignored.
async fn gather<B>(mut body: B, min_rate: usize) -> Result<Bytes, Gathered<B::Error>>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    let started = tokio::time::Instant::now();
    let mut received = 0u64;
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    loop {
        let frame = match crate::conn::rate_allows(min_rate, received) {
            None => body.frame().await,
            Some(allowed) => match tokio::time::timeout_at(started + allowed, body.frame()).await {
                Ok(frame) => frame,
                Err(_) => {
                    return Err(Gathered::Slow {
                        bytes: received,
                        secs: started.elapsed().as_secs_f64(),
                    });
                }
            },
        };
        let Some(frame) = frame else { break };
        let Ok(data) = frame.map_err(Gathered::Body)?.into_data() else {
            continue;
        };
        received += data.len() as u64;
        if data.is_empty() {
            continue;
        }
        match (&mut joined, first.take()) {
            (Some(j), _) => j.extend_from_slice(&data),
            (None, None) => first = Some(data),
            (None, Some(f)) => {
                let mut j = BytesMut::with_capacity(f.len() + data.len());
                j.extend_from_slice(&f);
                j.extend_from_slice(&data);
                joined = Some(j);
            }
        }
    }
    Ok(match joined {
        Some(j) => j.freeze(),
        None => first.unwrap_or_default(),
    })
}

/// Why a body could not be gathered.
enum Gathered<E> {
    /// The body's own error (a reset, a size limit).
    Body(E),
    /// It arrived slower than `--min-rate`.
    Slow { bytes: u64, secs: f64 },
}

fn too_large(cfg: &Values, size: &str) -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the request body is {size}; the limit is {} bytes (--max-body-size)",
            cfg.max_body_size
        ),
    )
}

fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

// The error is the answer itself, made once on a cold path: boxing it would buy nothing.
#[allow(clippy::result_large_err)]
fn encoding(headers: &http::HeaderMap) -> Result<Encoding, Response> {
    let Some(value) = headers.get(CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let v = value.to_str().unwrap_or("").trim().to_ascii_lowercase();
    match v.as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        "deflate" => Ok(Encoding::Deflate),
        other => Err(error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding {other:?} is not supported; send gzip, deflate or identity"),
        )),
    }
}

enum Failure {
    TooLarge,
    Corrupt(String),
}

fn decompress(encoding: Encoding, raw: &[u8], limit: usize) -> Result<Vec<u8>, Failure> {
    let cap = limit.saturating_add(1) as u64;
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit.min(64 << 20)));
    let read = match encoding {
        Encoding::Gzip => flate2::read::MultiGzDecoder::new(raw)
            .take(cap)
            .read_to_end(&mut out),
        Encoding::Deflate => {
            // HTTP's "deflate" is zlib-wrapped, but some clients send raw deflate.
            let zlib = flate2::read::ZlibDecoder::new(raw)
                .take(cap)
                .read_to_end(&mut out);
            if zlib.is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(raw)
                    .take(cap)
                    .read_to_end(&mut out)
            } else {
                zlib
            }
        }
        Encoding::Identity => unreachable!("identity bodies are not decompressed"),
    };
    read.map_err(|e| Failure::Corrupt(e.to_string()))?;
    if out.len() > limit {
        return Err(Failure::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decompresses_gzip_and_both_deflates() {
        let data = b"{\"inputs\": []}".repeat(10);
        assert_eq!(
            decompress(Encoding::Gzip, &gzip(&data), 1 << 20)
                .ok()
                .unwrap(),
            data
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&data).unwrap();
        assert_eq!(
            decompress(Encoding::Deflate, &z.finish().unwrap(), 1 << 20)
                .ok()
                .unwrap(),
            data
        );
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        d.write_all(&data).unwrap();
        assert_eq!(
            decompress(Encoding::Deflate, &d.finish().unwrap(), 1 << 20)
                .ok()
                .unwrap(),
            data
        );
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 64 << 10);
        assert!(matches!(
            decompress(Encoding::Gzip, &bomb, 1 << 20),
            Err(Failure::TooLarge)
        ));
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        assert!(matches!(
            decompress(Encoding::Gzip, b"not gzip at all", 1 << 20),
            Err(Failure::Corrupt(_))
        ));
    }

    #[test]
    fn unknown_encodings_are_415() {
        let mut h = http::HeaderMap::new();
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("br"));
        assert_eq!(encoding(&h).unwrap_err().status(), 415);
    }
}
