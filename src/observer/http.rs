//! The observer's HTTP surface (axum): the page and its assets, the live feed (server-sent
//! events), `/api/status`, `/metrics`, and the control endpoint, which answers 403 and
//! changes nothing unless the request carries the control token.

use super::poller::Published;
use super::reading::Cluster;
use super::token::{self, ControlToken};
use super::tree::SERVER_TREE;
use super::{assets, metrics};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::Stream;
use kv_app::control::{ControlError, ControlReply, ControlRequest};
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// How long a control request may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);
/// When to look again after a control.
const AFTER_CONTROL: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct AppState {
    pub cluster: Cluster,
    pub token: ControlToken,
    pub latest: watch::Receiver<Arc<Published>>,
    /// Asks the poller for a look now.
    pub nudge: Arc<Notify>,
    /// The port the observer listens on, for the Host check.
    pub port: u16,
    /// Whether requests naming any host are accepted (bound beyond loopback).
    pub any_host: bool,
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/assets/{file}", get(asset))
        .route("/api/events", get(feed))
        .route("/api/status", get(status))
        .route("/api/control", post(control))
        .route("/metrics", get(prometheus))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Refuses requests for another host name (a DNS-rebinding page would name its own) and
/// sets headers that keep the page to its own assets.
async fn guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if !st.any_host {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !loopback_host(host, st.port) {
            return (StatusCode::FORBIDDEN, "unexpected Host header\n").into_response();
        }
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `127.0.0.1:PORT`, `localhost:PORT` or `[::1]:PORT`.
fn loopback_host(host: &str, port: u16) -> bool {
    let Some((name, p)) = host.rsplit_once(':') else {
        return false;
    };
    p.parse::<u16>().ok() == Some(port)
        && (name == "localhost"
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()))
}

async fn page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        assets::INDEX_HTML,
    )
        .into_response()
}

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match assets::get(&file) {
        Some((content_type, body)) => {
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

/// The page's live feed: the current view at once, then each new one.
async fn feed(State(st): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut rx = st.latest.clone();
    rx.mark_changed();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let json = rx.borrow_and_update().page_json.clone();
        if json.is_empty() {
            return Some((Ok(Event::default().comment("starting")), rx));
        }
        Some((Ok(Event::default().event("view").data(json)), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
struct StatusQuery {
    node: Option<String>,
}

/// Every node's `ctl status` JSON (`{"nodes": [...], "unreachable": {...}}`), or one
/// node's exactly as `ctl status` prints it with `?node=NAME`.
async fn status(State(st): State<AppState>, Query(q): Query<StatusQuery>) -> Response {
    let latest = st.latest.borrow().clone();
    if let Some(name) = q.node {
        return match latest.readings.iter().find(|r| r.member.name == name) {
            Some(r) => match &r.status {
                Ok(s) => json_response(StatusCode::OK, &s),
                Err(e) => error(StatusCode::BAD_GATEWAY, e),
            },
            None => error(StatusCode::NOT_FOUND, &format!("no node {name} here")),
        };
    }
    let nodes: Vec<_> = latest.readings.iter().filter_map(|r| r.status()).collect();
    let unreachable: serde_json::Map<String, serde_json::Value> = latest
        .readings
        .iter()
        .filter_map(|r| {
            r.status
                .as_ref()
                .err()
                .map(|e| (r.member.name.clone(), e.clone().into()))
        })
        .collect();
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "nodes": nodes, "unreachable": unreachable }),
    )
}

async fn prometheus(State(st): State<AppState>) -> Response {
    let latest = st.latest.borrow().clone();
    match metrics::encode(&latest.readings) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics",
        ),
    }
}

/// A control request as the page sends it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlBody {
    node: String,
    action: String,
    #[serde(default)]
    probability: Option<f64>,
    #[serde(default)]
    allow: Option<Vec<String>>,
    #[serde(default)]
    process: Option<String>,
}

async fn control(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let given = headers
        .get(token::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !st.token.verify(given) {
        return error(
            StatusCode::FORBIDDEN,
            "a control needs the token (open the address the command line printed)",
        );
    }
    let body: ControlBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad request: {e}")),
    };
    if !st.cluster.has(&body.node) {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no node {} here", body.node),
        );
    }
    let request = match request_for(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    log::info!("observer: {} on {} (from the page)", body.action, body.node);
    match st
        .cluster
        .request(&body.node, request, CONTROL_TIMEOUT)
        .await
    {
        Ok(ControlReply::Done) => {
            look_soon(&st.nudge);
            json_response(StatusCode::OK, &serde_json::json!({"ok": true}))
        }
        Ok(ControlReply::Refused(reason)) => error(StatusCode::CONFLICT, &reason),
        Err(e @ ControlError::Refused(..)) => error(StatusCode::CONFLICT, &e.to_string()),
        Ok(ControlReply::Status(_) | ControlReply::Paxos(_)) => {
            error(StatusCode::BAD_GATEWAY, "unexpected answer")
        }
        Err(e @ ControlError::Timeout(..)) => error(StatusCode::GATEWAY_TIMEOUT, &e.to_string()),
        Err(e @ (ControlError::Unreachable(_) | ControlError::Unexpected(_))) => {
            error(StatusCode::BAD_GATEWAY, &e.to_string())
        }
    }
}

/// A look now, and another shortly after: a killed process is restarted by its
/// supervisor a moment after the kill is done.
fn look_soon(nudge: &Arc<Notify>) {
    nudge.notify_one();
    let nudge = nudge.clone();
    tokio::spawn(async move {
        tokio::time::sleep(AFTER_CONTROL).await;
        nudge.notify_one();
    });
}

fn request_for(b: &ControlBody) -> Result<ControlRequest, String> {
    Ok(match b.action.as_str() {
        "deaf" => ControlRequest::Deaf,
        "listen" => ControlRequest::Listen,
        "reliable" => ControlRequest::Reliable,
        "unreliable" => {
            let p = b.probability.unwrap_or(0.2);
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("probability {p} is not within 0..1"));
            }
            ControlRequest::Unreliable(p)
        }
        "allow" => match &b.allow {
            Some(list) if !list.is_empty() => ControlRequest::Allow(list.clone()),
            _ => return Err("allow needs a non-empty list of node names".into()),
        },
        "allow-all" => ControlRequest::AllowAll,
        "kill" => match &b.process {
            // Nothing supervises the root: the node would lose its application for good.
            Some(p) if p == SERVER_TREE.name => {
                return Err(format!(
                    "{p} has no supervisor to restart it: the page does not kill it"
                ));
            }
            Some(p) if !p.is_empty() => ControlRequest::Kill(p.clone()),
            _ => return Err("kill needs a process name".into()),
        },
        other => return Err(format!("unknown action {other:?}")),
    })
}

fn json_response(code: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (code, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode\n").into_response(),
    }
}

fn error(code: StatusCode, message: &str) -> Response {
    json_response(code, &serde_json::json!({ "error": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_on_our_port_pass_the_host_check() {
        assert!(loopback_host("127.0.0.1:8080", 8080));
        assert!(loopback_host("localhost:8080", 8080));
        assert!(loopback_host("[::1]:8080", 8080));
        assert!(!loopback_host("127.0.0.1:8081", 8080));
        assert!(!loopback_host("evil.example:8080", 8080));
        assert!(!loopback_host("127.0.0.1", 8080));
        assert!(!loopback_host("", 8080));
    }
}
