//! The LAN admin web server: HTTPS only, with header-read timeouts.
//!
//! For now it serves a status page; the full admin UI builds on this listener.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::tls::AdminTls;
use crate::Gateway;

/// Time a browser has to finish the TLS handshake.
const TLS_DEADLINE: Duration = Duration::from_secs(10);
/// Time a browser has to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts HTTPS connections until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    tls: AdminTls,
    gw: Arc<Gateway>,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls.config.clone());
    let tls = Arc::new(tls);
    let router = Router::new().route("/", get(index)).with_state((gw, tls));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let Ok(Ok(stream)) = tokio::time::timeout(TLS_DEADLINE, acceptor.accept(tcp)).await
            else {
                tracing::debug!(%peer, "admin TLS handshake failed");
                return;
            };
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router))
                .await
            {
                tracing::debug!(%peer, "admin connection: {e}");
            }
        });
    }
}

async fn index(State((gw, tls)): State<(Arc<Gateway>, Arc<AdminTls>)>) -> Html<String> {
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>Latchkey</title>\
         <h1>Latchkey gateway {}</h1><p>Certificate SHA-256: <code>{}</code></p>\
         <p>Manage this gateway with the <code>latchkey</code> command on the gateway host.</p>",
        html_escape(&gw.config.name),
        tls.fingerprint
    ))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
