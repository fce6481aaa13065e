//! One retry policy for every request to OneLake / ADLS: object_store's Blob calls and our DFS calls
//! go through this [`HttpService`], so throttling is handled in one place.
//!
//! - 429 and 503 (throttling, "server busy": the request was not applied) are retried for every
//!   method, after `Retry-After` (seconds or an HTTP date) when the server sends it, else after a
//!   capped exponential backoff with jitter;
//! - 408, 500, 502, 504 and timeouts are retried only for reads (`GET`, `HEAD`): a write may have
//!   been applied, so its caller must verify (see [`crate::publish`]) rather than blindly resend;
//! - a connection that could not be opened is retried for every method (nothing was sent).
//!
//! object_store's own retries are switched off so that requests are not retried twice.

use std::time::Duration;

use async_trait::async_trait;
use mirror_core::telemetry::RetryReason;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpService,
    ReqwestConnector,
};
use object_store::ClientOptions;
use tracing::warn;

/// Retry limits of the HTTP layer.
#[derive(Clone, Debug)]
pub struct HttpRetry {
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// First backoff delay.
    pub initial_backoff: Duration,
    /// Largest delay, including one asked for by `Retry-After`.
    pub max_backoff: Duration,
}

impl Default for HttpRetry {
    fn default() -> Self {
        Self {
            max_retries: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Told of every retry the HTTP layer makes, with its reason (the sink counts them).
#[derive(Clone)]
pub struct RetryObserver(std::sync::Arc<RetryFn>);

type RetryFn = dyn Fn(RetryReason, &str) + Send + Sync;

impl RetryObserver {
    /// An observer calling `f` with the reason and what failed (method, path, status or error;
    /// no query string, so no SAS signature).
    pub fn new(f: impl Fn(RetryReason, &str) + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(f))
    }

    fn notify(observer: &Option<Self>, reason: RetryReason, what: impl FnOnce() -> String) {
        if let Some(o) = observer {
            (o.0)(reason, &what());
        }
    }
}

impl std::fmt::Debug for RetryObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RetryObserver")
    }
}

/// Builds reqwest clients wrapped in [`RetryingService`].
#[derive(Debug)]
pub struct RetryingConnector {
    pub(crate) retry: HttpRetry,
    pub(crate) observer: Option<RetryObserver>,
}

impl HttpConnector for RetryingConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(RetryingService {
            inner,
            retry: self.retry.clone(),
            observer: self.observer.clone(),
        }))
    }
}

/// An [`HttpService`] that retries throttled and failed requests.
#[derive(Debug)]
pub struct RetryingService {
    inner: HttpClient,
    retry: HttpRetry,
    observer: Option<RetryObserver>,
}

/// The delay a response asks for in `Retry-After` (or `x-ms-retry-after-ms`).
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("x-ms-retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(Duration::from_millis(ms));
    }
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs >= 0.0 && secs.is_finite()).then(|| Duration::from_secs_f64(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

fn backoff(retry: &HttpRetry, attempt: usize) -> Duration {
    let base = retry
        .initial_backoff
        .saturating_mul(1u32 << attempt.min(16))
        .min(retry.max_backoff);
    let jitter = rand::random::<f64>() * base.as_secs_f64() / 2.0;
    (base + Duration::from_secs_f64(jitter)).min(retry.max_backoff)
}

fn rebuild(
    parts: &http::request::Parts,
    body: object_store::client::HttpRequestBody,
) -> HttpRequest {
    let mut request = HttpRequest::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request
}

#[async_trait]
impl HttpService for RetryingService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = req.into_parts();
        let read = parts.method == http::Method::GET || parts.method == http::Method::HEAD;
        let mut attempt = 0;
        loop {
            let request = rebuild(&parts, body.clone());
            match self.inner.execute(request).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retryable = status == 429
                        || status == 503
                        || (read
                            && (status == 408 || status == 500 || status == 502 || status == 504));
                    if !retryable || attempt >= self.retry.max_retries {
                        return Ok(response);
                    }
                    let delay = retry_after(response.headers())
                        .map(|d| d.min(self.retry.max_backoff))
                        .unwrap_or_else(|| backoff(&self.retry, attempt));
                    warn!(
                        method = %parts.method, path = %parts.uri.path(), status, retry_in = ?delay,
                        "storage request throttled or failed; retrying"
                    );
                    let reason = match status {
                        429 => RetryReason::Throttled,
                        408 => RetryReason::Timeout,
                        _ => RetryReason::Unavailable,
                    };
                    RetryObserver::notify(&self.observer, reason, || {
                        format!(
                            "storage request {} {} answered {status}; retried",
                            parts.method,
                            parts.uri.path()
                        )
                    });
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    let retryable = match e.kind() {
                        HttpErrorKind::Connect => true,
                        HttpErrorKind::Timeout
                        | HttpErrorKind::Interrupted
                        | HttpErrorKind::Request => read,
                        _ => false,
                    };
                    if !retryable || attempt >= self.retry.max_retries {
                        return Err(e);
                    }
                    let delay = backoff(&self.retry, attempt);
                    warn!(
                        method = %parts.method, path = %parts.uri.path(), error = %e, retry_in = ?delay,
                        "storage request failed; retrying"
                    );
                    let reason = match e.kind() {
                        HttpErrorKind::Timeout => RetryReason::Timeout,
                        _ => RetryReason::Network,
                    };
                    RetryObserver::notify(&self.observer, reason, || {
                        format!(
                            "storage request {} {} failed: {e}; retried",
                            parts.method,
                            parts.uri.path()
                        )
                    });
                    tokio::time::sleep(delay).await;
                }
            }
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_milliseconds_and_dates() {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("x-ms-retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut h = http::HeaderMap::new();
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        h.insert(http::header::RETRY_AFTER, later.parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(retry_after(&http::HeaderMap::new()), None);
    }
}
