//! Every REST error as its gRPC status, with the same message; and the call's deadline.

use std::time::Duration;

use http::StatusCode;
use serve_model::error::ApiError;
use tonic::{Code, Status};

/// The gRPC status of a REST error (Triton's mapping where it has one): 400 INVALID_ARGUMENT,
/// 404 NOT_FOUND, 503 UNAVAILABLE (a full queue included: the client may retry), 413
/// RESOURCE_EXHAUSTED, 504 DEADLINE_EXCEEDED, 501 and 405 UNIMPLEMENTED, anything else
/// INTERNAL. The message is the REST answer's `error`.
pub fn of(e: ApiError) -> Status {
    let code = match e.status() {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => Code::InvalidArgument,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => Code::Unavailable,
        StatusCode::PAYLOAD_TOO_LARGE => Code::ResourceExhausted,
        StatusCode::GATEWAY_TIMEOUT => Code::DeadlineExceeded,
        StatusCode::NOT_IMPLEMENTED | StatusCode::METHOD_NOT_ALLOWED => Code::Unimplemented,
        _ => Code::Internal,
    };
    Status::new(code, e.message())
}

/// The call's deadline: `grpc-timeout` (up to 8 digits and a unit, H M S m u n), and
/// tritonclient's `timeout` parameter (microseconds) when it is sooner. A malformed header
/// is ignored, as gRPC's servers do.
pub fn deadline(
    metadata: &tonic::metadata::MetadataMap,
    parameter_us: Option<i64>,
) -> Option<Duration> {
    let header = metadata
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_timeout);
    let parameter = parameter_us
        .filter(|us| *us > 0)
        .map(|us| Duration::from_micros(us as u64));
    match (header, parameter) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `grpc-timeout`'s value: `100m` is 100 ms.
pub fn parse_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_as_grpc_writes_them() {
        assert_eq!(parse_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "m", "100", "100x", "-1m", "123456789m", "1.5S"] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_sooner_deadline_wins() {
        let mut md = tonic::metadata::MetadataMap::new();
        assert_eq!(deadline(&md, None), None);
        assert_eq!(deadline(&md, Some(0)), None);
        assert_eq!(deadline(&md, Some(5_000)), Some(Duration::from_millis(5)));
        md.insert("grpc-timeout", "2m".parse().unwrap());
        assert_eq!(deadline(&md, Some(5_000)), Some(Duration::from_millis(2)));
        assert_eq!(deadline(&md, Some(1_000)), Some(Duration::from_millis(1)));
    }

    #[test]
    fn rest_errors_keep_their_message_under_their_grpc_code() {
        let cases = [
            (ApiError::bad_request("x"), Code::InvalidArgument),
            (ApiError::not_found("x"), Code::NotFound),
            (ApiError::overloaded("x"), Code::Unavailable),
            (ApiError::unavailable("x"), Code::Unavailable),
            (ApiError::timeout("x"), Code::DeadlineExceeded),
            (ApiError::internal("x"), Code::Internal),
            (
                ApiError::new(StatusCode::NOT_IMPLEMENTED, "x"),
                Code::Unimplemented,
            ),
            (
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "x"),
                Code::ResourceExhausted,
            ),
        ];
        for (e, code) in cases {
            let s = of(e);
            assert_eq!((s.code(), s.message()), (code, "x"));
        }
    }
}
