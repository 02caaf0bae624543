//! The one error type of the request path, and how it becomes an HTTP answer.
//!
//! Every failure a client can cause or suffer is an [`ApiError`]: a status and a message
//! that names the input, the expected and the received values. Handlers return
//! `Result<Response, ApiError>` and the router turns the error into `{"error": "..."}` with
//! [`serve_app::error_response`], so every protocol answers errors the same way (Triton's
//! mapping: invalid argument 400, not found 404, unavailable 503, internal 500).

use std::fmt;

use http::{HeaderValue, StatusCode, header};
use serve_app::Response;
use serve_runtime::metadata::TensorMeta;
use serve_runtime::run_error::RunError;

/// A failed request: the status to answer and a message for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// For 405: the methods the path accepts (the `Allow` header).
    allow: Option<String>,
    /// For 503 when a queue is full: seconds after which to retry (`Retry-After`).
    retry_after: Option<u32>,
    /// Logged where it happened: the app does not log it again per request.
    logged: bool,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            allow: None,
            retry_after: None,
            logged: false,
        }
    }

    /// 400: the request is malformed or does not fit the model.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such model, version or route.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 405 with the `Allow` header listing the accepted methods.
    pub fn method_not_allowed(allow: impl Into<String>) -> Self {
        let allow = allow.into();
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method not allowed; this path accepts {allow}"),
        );
        e.allow = Some(allow);
        e
    }

    /// 503: the model cannot serve now (it failed to load, or its executor stopped).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// 503 with `Retry-After`: the model's queue is full; another worker or a later try
    /// will do.
    pub fn overloaded(message: impl Into<String>) -> Self {
        Self::retry_later(message, 1)
    }

    /// 503 with `Retry-After: secs`: the model cannot serve now, a later try may work.
    pub fn retry_later(message: impl Into<String>, secs: u32) -> Self {
        let mut e = Self::unavailable(message);
        e.retry_after = Some(secs);
        e
    }

    /// The same error, marked as logged already (once, where it happened), so that the app
    /// does not log it again for every request it answers.
    pub fn already_logged(mut self) -> Self {
        self.logged = true;
        self
    }

    /// True when the error was logged where it happened.
    pub fn is_logged(&self) -> bool {
        self.logged
    }

    /// 504: the request ran past `--request-timeout`.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, message)
    }

    /// 500: inference failed inside the model (the engine's message is kept).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The status this error answers.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message shown to the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with a prefix naming where it happened (`input "x": ...`).
    pub fn context(mut self, prefix: impl fmt::Display) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }

    /// The HTTP answer: `{"error": message}` with the status and its headers.
    pub fn into_response(self) -> Response {
        let mut res = serve_app::error_response(self.status, &self.message);
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            res.headers_mut().insert(header::ALLOW, allow);
        }
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.status.as_u16())
    }
}

impl std::error::Error for ApiError {}

/// The REST answer of each runtime error (Triton's mapping: unavailable 503, invalid
/// argument 400, internal 500; a timeout 504).
impl From<RunError> for ApiError {
    fn from(e: RunError) -> ApiError {
        let message = e.to_string();
        match e {
            RunError::QueueFull { .. } => ApiError::overloaded(message),
            RunError::Stopped { .. } => ApiError::unavailable(message),
            RunError::TimedOut { .. } => ApiError::timeout(message),
            RunError::LoadFailed(_) => ApiError::unavailable(message).already_logged(),
            RunError::LoadInterrupted { .. } => ApiError::retry_later(message, 1),
            RunError::BadBatch(_) => ApiError::bad_request(message),
            RunError::Inference(_) => ApiError::internal(message),
        }
    }
}

/// `input "input": expected shape [-1, 4] (the first dimension is the batch), received
/// [4]; add the batch dimension: [1, 4]`.
pub(crate) fn shape_mismatch(input: &TensorMeta, received: &[i64]) -> String {
    let expected = input.shape_i64();
    let mut msg = format!(
        "input \"{}\": expected shape {}{}, received {}",
        input.name,
        fmt_shape(&expected),
        if input.has_batch_dim() {
            " (the first dimension is the batch)"
        } else {
            ""
        },
        fmt_shape(received)
    );
    if input.has_batch_dim() && received.len() + 1 == expected.len() {
        let mut fixed = vec![1];
        fixed.extend_from_slice(received);
        msg.push_str(&format!("; add the batch dimension: {}", fmt_shape(&fixed)));
    }
    msg
}

/// A shape as the messages print it: `[-1, 4]`.
pub(crate) fn fmt_shape<T: fmt::Display>(dims: &[T]) -> String {
    let mut s = String::from("[");
    for (i, d) in dims.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&d.to_string());
    }
    s.push(']');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(res: &Response) -> serde_json::Value {
        serde_json::from_slice(res.body()).unwrap()
    }

    #[test]
    fn method_not_allowed_sets_allow() {
        let res = ApiError::method_not_allowed("POST").into_response();
        assert_eq!(res.status(), 405);
        assert_eq!(res.headers()[header::ALLOW], "POST");
        assert!(body(&res)["error"].as_str().unwrap().contains("POST"));
    }

    #[test]
    fn overloaded_sets_retry_after() {
        let res = ApiError::overloaded("queue full").into_response();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        assert_eq!(body(&res)["error"], "queue full");
    }

    #[test]
    fn context_prefixes_the_message() {
        let e = ApiError::bad_request("bad").context("input \"x\"");
        assert_eq!(e.message(), "input \"x\": bad");
    }

    #[test]
    fn shapes_print_like_lists() {
        assert_eq!(fmt_shape(&[-1i64, 4]), "[-1, 4]");
        assert_eq!(fmt_shape::<usize>(&[]), "[]");
    }

    #[test]
    fn each_runtime_error_has_its_status() {
        let model: std::sync::Arc<str> = "iris".into();
        let cases = [
            (
                RunError::QueueFull {
                    model: model.clone(),
                    max_queue: 8,
                },
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                RunError::Stopped {
                    model: model.clone(),
                },
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                RunError::TimedOut {
                    model: model.clone(),
                    limit: std::time::Duration::from_secs(2),
                    client: false,
                },
                StatusCode::GATEWAY_TIMEOUT,
            ),
            (
                RunError::LoadFailed("model iris: bad".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                RunError::LoadInterrupted {
                    model,
                    cause: "x".into(),
                },
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (RunError::BadBatch("b".into()), StatusCode::BAD_REQUEST),
            (
                RunError::Inference("i".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (e, status) in cases {
            let text = e.to_string();
            let api = ApiError::from(e);
            assert_eq!(api.status(), status, "{text}");
            assert_eq!(api.message(), text);
        }
        let full = ApiError::from(RunError::QueueFull {
            model: "iris".into(),
            max_queue: 8,
        });
        let res = full.into_response();
        assert_eq!(res.headers()[http::header::RETRY_AFTER], "1");
        assert!(ApiError::from(RunError::LoadFailed("m".into())).is_logged());
    }
}
