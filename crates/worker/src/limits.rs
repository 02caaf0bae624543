//! gunicorn's request limits, checked on the parsed head where hyper has no knob for them.
//!
//! On HTTP/1, hyper bounds the number of header fields itself (it answers 431, with an empty
//! body, past `max_headers`, set from `--limit-request-fields`) and the whole head by its buffer
//! size. The request line and the size of each field, and on HTTP/2 the field count, are
//! checked here, so that the answer says which limit was hit and which flag raises it. So is
//! RFC 9112's rule that an HTTP/1.1 request carries exactly one `Host` field (hyper accepts
//! none or several; gunicorn, and RFC 9112 §3.2, answer 400).

use http::StatusCode;
use serve_app::{Response, error_response};

use serve_settings::Values;

/// Checks the request line and header fields against the configured limits.
#[allow(clippy::result_large_err)] // the error is the answer, made on a cold path
pub(crate) fn check_head(parts: &http::request::Parts, cfg: &Values) -> Result<(), Response> {
    if parts.version == http::Version::HTTP_11 {
        let hosts = parts.headers.get_all(http::header::HOST).iter().count();
        if hosts != 1 {
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                format!(
                    "an HTTP/1.1 request needs exactly one Host header field (RFC 9112, section \
                     3.2); this one has {hosts}"
                ),
            ));
        }
    }
    if cfg.limit_request_line > 0 {
        let len = request_line_len(parts);
        if len > cfg.limit_request_line {
            return Err(error_response(
                StatusCode::URI_TOO_LONG,
                format!(
                    "the request line is {len} bytes; the limit is {} (--limit-request-line)",
                    cfg.limit_request_line
                ),
            ));
        }
    }
    if cfg.limit_request_fields > 0 && parts.headers.len() > cfg.limit_request_fields {
        return Err(error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request has {} header fields; the limit is {} (--limit-request-fields)",
                parts.headers.len(),
                cfg.limit_request_fields
            ),
        ));
    }
    if cfg.limit_request_field_size > 0 {
        for (name, value) in &parts.headers {
            // As sent: `name: value`.
            let len = name.as_str().len() + 2 + value.len();
            if len > cfg.limit_request_field_size {
                return Err(error_response(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    format!(
                        "header field {name} is {len} bytes; the limit is {} (--limit-request-field-size)",
                        cfg.limit_request_field_size
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `METHOD SP request-target SP HTTP/1.1`, as the client sent it.
fn request_line_len(parts: &http::request::Parts) -> usize {
    let uri = &parts.uri;
    let target = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(1, |p| p.as_str().len());
    parts.method.as_str().len() + 1 + target + 1 + "HTTP/1.1".len()
}

/// What `--limit-request-fields 0` means to hyper's HTTP/1 parser, which needs a bound.
pub(crate) const UNLIMITED_FIELDS: usize = 10_000;

/// The largest head hyper must buffer for these limits (it needs at least 8 KiB).
pub(crate) fn head_buffer_size(cfg: &Values) -> Option<usize> {
    if cfg.limit_request_line == 0
        || cfg.limit_request_fields == 0
        || cfg.limit_request_field_size == 0
    {
        return None;
    }
    let head =
        cfg.limit_request_line + cfg.limit_request_fields * (cfg.limit_request_field_size + 2) + 4;
    Some(head.clamp(8192, 16 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().uri(uri).header("host", "h");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn cfg() -> Values {
        Values {
            limit_request_line: 40,
            limit_request_fields: 2,
            limit_request_field_size: 20,
            ..Values::default()
        }
    }

    #[test]
    fn a_long_request_line_is_414_naming_the_flag() {
        assert!(check_head(&parts("/short", &[]), &cfg()).is_ok());
        let res = check_head(&parts(&format!("/{}", "a".repeat(40)), &[]), &cfg()).unwrap_err();
        assert_eq!(res.status(), 414);
        let body = String::from_utf8(res.body().to_vec()).unwrap();
        assert!(body.contains("--limit-request-line"), "{body}");
    }

    #[test]
    fn too_many_or_too_large_fields_are_431() {
        let res =
            check_head(&parts("/", &[("a", "1"), ("b", "2"), ("c", "3")]), &cfg()).unwrap_err();
        assert_eq!(res.status(), 431);
        let res = check_head(&parts("/", &[("a", &"x".repeat(30))]), &cfg()).unwrap_err();
        assert_eq!(res.status(), 431);
        let body = String::from_utf8(res.body().to_vec()).unwrap();
        assert!(body.contains("header field a is 33 bytes"), "{body}");
    }

    #[test]
    fn an_http_1_1_request_needs_exactly_one_host() {
        let no_host = |version| {
            let mut p = http::Request::builder()
                .uri("/")
                .body(())
                .unwrap()
                .into_parts()
                .0;
            p.version = version;
            p
        };
        let res = check_head(&no_host(http::Version::HTTP_11), &cfg()).unwrap_err();
        assert_eq!(res.status(), 400);
        let body = String::from_utf8(res.body().to_vec()).unwrap();
        assert!(body.contains("exactly one Host header field"), "{body}");
        assert!(body.contains("this one has 0"), "{body}");
        let mut two = parts("/", &[("host", "other")]);
        two.version = http::Version::HTTP_11;
        let res = check_head(&two, &cfg()).unwrap_err();
        assert!(
            String::from_utf8(res.body().to_vec())
                .unwrap()
                .contains("has 2")
        );
        // HTTP/1.0 has no such rule, and HTTP/2 names its authority otherwise.
        assert!(check_head(&no_host(http::Version::HTTP_10), &cfg()).is_ok());
        assert!(check_head(&no_host(http::Version::HTTP_2), &cfg()).is_ok());
    }

    #[test]
    fn zero_disables_a_limit() {
        let cfg = Values {
            limit_request_line: 0,
            limit_request_fields: 0,
            limit_request_field_size: 0,
            ..Values::default()
        };
        let p = parts(
            &format!("/{}", "a".repeat(10_000)),
            &[("a", &"x".repeat(10_000))],
        );
        assert!(check_head(&p, &cfg).is_ok());
        assert_eq!(head_buffer_size(&cfg), None);
    }
}
