//! Compressed answers: an answer of at least `--compress-min-size` bytes is gzip- or
//! deflate-compressed when the request's `Accept-Encoding` takes one (gzip preferred at equal
//! weight), as Triton does when asked; every answer that size carries `Vary: Accept-Encoding`
//! so that caches keep both. Smaller answers (a one-row prediction) are not looked at.
//!
//! Level 1, as nginx's default: most of the size for a fraction of the time. Large answers
//! are compressed on the blocking pool, so that the event loop keeps serving.

use std::io::Write;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::{GzEncoder, ZlibEncoder};
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, HeaderValue, VARY};
use http::{HeaderMap, StatusCode};

/// Answers larger than this are compressed off the event loop.
const INLINE_COMPRESS: usize = 256 << 10;

/// A coding the client accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coding {
    Gzip,
    Deflate,
}

impl Coding {
    fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
        }
    }
}

/// The coding to answer in: the one of gzip and deflate with the highest weight above 0
/// (gzip at equal weight, and for `*`); none when the header takes neither.
pub(crate) fn accepted(headers: &HeaderMap) -> Option<Coding> {
    let (mut gzip, mut deflate, mut any) = (None, None, None);
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut params = item.split(';');
            let coding = params.next().unwrap_or("").trim();
            let q = params
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let slot =
                if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                    &mut gzip
                } else if coding.eq_ignore_ascii_case("deflate") {
                    &mut deflate
                } else if coding == "*" {
                    &mut any
                } else {
                    continue;
                };
            *slot = Some(q);
        }
    }
    let gzip = gzip.or(any).unwrap_or(0.0);
    let deflate = deflate.or(any).unwrap_or(0.0);
    match (gzip, deflate) {
        (g, d) if g > 0.0 && g >= d => Some(Coding::Gzip),
        (_, d) if d > 0.0 => Some(Coding::Deflate),
        _ => None,
    }
}

/// Compresses `res` in place when it is at least `min` bytes, not encoded yet, and the
/// client takes a coding.
pub(crate) async fn answer(res: &mut serve_app::Response, coding: Option<Coding>, min: usize) {
    let len = res.body().len();
    if len < min
        || len == 0
        || res.headers().contains_key(CONTENT_ENCODING)
        || matches!(
            res.status(),
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
        )
    {
        return;
    }
    res.headers_mut()
        .append(VARY, HeaderValue::from_static("accept-encoding"));
    let Some(coding) = coding else {
        return;
    };
    let body = res.body().clone();
    let compressed = if len <= INLINE_COMPRESS {
        compress(coding, &body)
    } else {
        match tokio::task::spawn_blocking(move || compress(coding, &body)).await {
            Ok(c) => c,
            Err(_) => return,
        }
    };
    // Writing into a Vec cannot fail; a body that would not shrink is sent as it is.
    let Ok(compressed) = compressed else { return };
    if compressed.len() >= len {
        return;
    }
    *res.body_mut() = Bytes::from(compressed);
    res.headers_mut()
        .insert(CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
}

fn compress(coding: Coding, body: &[u8]) -> std::io::Result<Vec<u8>> {
    let out = Vec::with_capacity(body.len() / 4);
    match coding {
        Coding::Gzip => {
            let mut e = GzEncoder::new(out, Compression::fast());
            e.write_all(body)?;
            e.finish()
        }
        Coding::Deflate => {
            let mut e = ZlibEncoder::new(out, Compression::fast());
            e.write_all(body)?;
            e.finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn the_accepted_coding_follows_the_weights() {
        assert_eq!(accepted(&HeaderMap::new()), None);
        assert_eq!(accepted(&with("gzip, deflate, br")), Some(Coding::Gzip));
        assert_eq!(accepted(&with("deflate")), Some(Coding::Deflate));
        assert_eq!(
            accepted(&with("gzip;q=0.5, deflate;q=0.8")),
            Some(Coding::Deflate)
        );
        assert_eq!(accepted(&with("gzip;q=0, deflate;q=0")), None);
        assert_eq!(accepted(&with("identity, br")), None);
        assert_eq!(accepted(&with("*")), Some(Coding::Gzip));
        assert_eq!(accepted(&with("*;q=0.1, gzip;q=0")), Some(Coding::Deflate));
        assert_eq!(accepted(&with("X-GZIP")), Some(Coding::Gzip));
    }
}
