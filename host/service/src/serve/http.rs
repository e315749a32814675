//! The daemon's HTTP side (tokio + axum): every request under `/v1/jobs` is read with a size
//! limit (413 past it, before the body is read when `Content-Length` says so), handed to
//! [`Daemon::handle`] on a blocking thread, and its reply or error sent back; every error is a
//! status with a JSON body ([`ErrorBody`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::protocol::{ErrorBody, CHUNK_SHA256, PREFIX};
use super::{ApiError, Daemon, Method, Reply, Request, MAX_JSON_BYTES};
use crate::error::{Error, Result};

fn error_response(e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(ErrorBody { error: e.code.to_string(), message: e.message })).into_response()
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn dispatch(
    axum::extract::State(daemon): axum::extract::State<Arc<Daemon>>,
    req: axum::extract::Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return error_response(ApiError { status: 404, code: "no_route", message: format!("no endpoint {path}") });
    };
    let method = match parts.method.as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        _ => Method::Other,
    };
    let limit = if method == Method::Put { daemon.opts.max_chunk_bytes } else { MAX_JSON_BYTES };
    let too_large = || ApiError {
        status: 413,
        code: "body_too_large",
        message: format!("a body of this request takes at most {limit} bytes"),
    };
    let declared = header_str(&parts.headers, header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return error_response(too_large());
    }
    let bytes = match axum::body::to_bytes(body, limit as usize).await {
        Ok(b) => b,
        Err(_) => return error_response(too_large()),
    };
    let offset = parts
        .uri
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("offset=")))
        .and_then(|v| v.parse::<u64>().ok());
    let token = header_str(&parts.headers, header::AUTHORIZATION.as_str())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(String::from);
    let sum = header_str(&parts.headers, CHUNK_SHA256).map(String::from);
    let rest = rest.to_string();
    let d = daemon.clone();
    let reply = tokio::task::spawn_blocking(move || {
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let r =
            Request { method, segments, offset, token: token.as_deref(), chunk_sha256: sum.as_deref(), body: &bytes };
        d.handle(&r)
    })
    .await;
    match reply {
        Ok(Ok(Reply::Json(status, v))) => {
            (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), axum::Json(v)).into_response()
        }
        Ok(Ok(Reply::Bytes(b))) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], Body::from(b)).into_response()
        }
        Ok(Err(e)) => error_response(e),
        Err(e) => error_response(ApiError { status: 500, code: "internal", message: e.to_string() }),
    }
}

/// Serves `daemon` on `listen` (`host:port`; port 0 picks a free one) until the process ends.
pub fn serve(daemon: Arc<Daemon>, listen: &str, bound: impl FnOnce(SocketAddr)) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| Error::io(listen, e))?;
        let addr = listener.local_addr().map_err(|e| Error::io(listen, e))?;
        bound(addr);
        let app = Router::new().fallback(dispatch).with_state(daemon);
        axum::serve(listener, app).await.map_err(|e| Error::io(listen, e))
    })
}
