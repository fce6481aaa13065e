//! `mirror health`: asks a running `mirror` for its `/health` (or any probe URL) and exits 0 only
//! on a 2xx answer. It is the container image's `HEALTHCHECK`: the runtime image has no curl or
//! shell tools, and the binary it already ships can make the request.

use std::time::Duration;

use crate::exit::Code;

/// Probes `url` once; `Code::Ok` on 2xx, `Code::Failed` on any other answer or no answer.
pub async fn health(url: &str, timeout: Duration) -> Code {
    // No proxy: the probe targets the API on this host (an HTTP(S)_PROXY in the environment is
    // for the outbound connections to MongoDB and OneLake, not for this).
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: cannot make an HTTP client: {e}");
            return Code::Failed;
        }
    };
    match client.get(url).send().await {
        Ok(reply) if reply.status().is_success() => {
            println!("{url}: {}", reply.status());
            Code::Ok
        }
        Ok(reply) => {
            let status = reply.status();
            let body = reply.text().await.unwrap_or_default();
            eprintln!("unhealthy: {url}: {status} {}", body.trim());
            Code::Failed
        }
        Err(e) => {
            eprintln!(
                "unhealthy: {url}: no answer ({}); is `mirror run` serving its API there?",
                causes(&e)
            );
            Code::Failed
        }
    }
}

/// An error with its causes, `a: b: c` (reqwest's own text names only the request).
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
