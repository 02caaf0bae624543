//! Calls the app so that a panic, in the call or in its future, becomes an error message
//! instead of the end of the worker.

use std::future::poll_fn;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::Poll;

use serve_app::{App, Context, Request, Response, StreamRequest, StreamResponse, panic_message};

/// Runs `app.call(req, cx)` to completion, catching panics.
pub(crate) async fn call(app: &dyn App, req: Request, cx: Context) -> Result<Response, String> {
    // Unwind safety: the app is shared by reference and its own state is its business; a
    // panicking request's future is dropped whole, and nothing of it is reused.
    let fut =
        catch_unwind(AssertUnwindSafe(|| app.call(req, cx))).map_err(|p| panic_message(&*p))?;
    guarded(fut).await
}

/// [`call`] for a streamed request ([`App::stream`]): the answer's head is guarded; its body
/// is polled by hyper, where a panic ends that connection's task, not the worker.
pub(crate) async fn stream(
    app: &dyn App,
    req: StreamRequest,
    cx: Context,
) -> Result<StreamResponse, String> {
    let fut =
        catch_unwind(AssertUnwindSafe(|| app.stream(req, cx))).map_err(|p| panic_message(&*p))?;
    guarded(fut).await
}

/// Polls an app's future to its end, a panic in it becoming its message.
async fn guarded<T>(mut fut: serve_app::BoxFuture<T>) -> Result<T, String> {
    poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(res)) => Poll::Ready(Ok(res)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic_message(&*panic))),
        },
    )
    .await
}
