//! Requests to responses: the endpoint contract of [`super`].

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use mirror_core::telemetry::Verdict;

use super::Shared;

/// What the status page may load: nothing but itself (its styles and SVG are inline). A
/// browser then refuses any request that would leave the machine, whatever a future edit adds.
const PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                           base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(super) fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        let mut r = json(
            StatusCode::METHOD_NOT_ALLOWED,
            &serde_json::json!({"error": "only GET and HEAD are served"}),
        );
        r.headers_mut()
            .insert("allow", HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path();
    let mut response = match path {
        "/health" => verdict(shared.telemetry.health(), "ok", "unhealthy"),
        "/ready" => verdict(shared.telemetry.readiness(), "ready", "not ready"),
        "/metrics" | "/api/status" | "/" if !authorized(shared, &req) => unauthorized(),
        "/metrics" => metrics(shared, &req),
        "/api/status" => {
            let report = shared.history.enrich(shared.telemetry.report());
            json(StatusCode::OK, &report)
        }
        "/" => {
            let report = shared.history.enrich(shared.telemetry.report());
            let html = super::page::render(&report, &shared.history);
            let mut r = body(StatusCode::OK, "text/html; charset=utf-8", html);
            r.headers_mut().insert(
                "content-security-policy",
                HeaderValue::from_static(PAGE_POLICY),
            );
            r
        }
        _ => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({
                "error": format!("no such endpoint: {path}"),
                "endpoints": ["/health", "/ready", "/metrics", "/api/status", "/"],
            }),
        ),
    };
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if head {
        *response.body_mut() = Full::new(Bytes::new());
    }
    response
}

/// `Authorization: Bearer <token>` when `[api] token` is set; compared in constant time.
fn authorized(shared: &Shared, req: &Request<Incoming>) -> bool {
    let Some(token) = &shared.token else {
        return true;
    };
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let (a, b) = (given.as_bytes(), token.expose().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized() -> Response<Full<Bytes>> {
    let mut r = json(
        StatusCode::UNAUTHORIZED,
        &serde_json::json!({"error": "this endpoint needs `Authorization: Bearer <[api] token>`"}),
    );
    r.headers_mut()
        .insert("www-authenticate", HeaderValue::from_static("Bearer"));
    r
}

fn verdict(v: Verdict, good: &str, bad: &str) -> Response<Full<Bytes>> {
    if v.ok {
        json(StatusCode::OK, &serde_json::json!({"status": good}))
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": bad, "reasons": v.reasons}),
        )
    }
}

fn metrics(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let openmetrics = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    match shared.metrics.encode(openmetrics) {
        Ok((content_type, text)) => body(StatusCode::OK, content_type, text),
        Err(e) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &serde_json::json!({"error": format!("encoding the metrics failed: {e}")}),
        ),
    }
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    let text = serde_json::to_string_pretty(value)
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot encode: {e}\"}}"));
    body(status, "application/json", text + "\n")
}

fn body(status: StatusCode, content_type: &str, text: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}
