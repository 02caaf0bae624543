//! Calls the app so that a panic, in the call or in its future, becomes an error message
//! instead of the end of the worker.

use std::future::poll_fn;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::Poll;

use serve_app::{App, Context, Request, Response, panic_message};

/// Runs `app.call(req, cx)` to completion, catching panics.
pub(crate) async fn call(app: &dyn App, req: Request, cx: Context) -> Result<Response, String> {
    // Unwind safety: the app is shared by reference and its own state is its business; a
    // panicking request's future is dropped whole, and nothing of it is reused.
    let mut fut =
        catch_unwind(AssertUnwindSafe(|| app.call(req, cx))).map_err(|p| panic_message(&*p))?;
    poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(res)) => Poll::Ready(Ok(res)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic_message(&*panic))),
        },
    )
    .await
}
