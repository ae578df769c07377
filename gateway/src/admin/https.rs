//! The LAN admin web server: HTTPS only, LAN sources only, with a header-read timeout
//! and bounded request heads; the pages and API are in [`super::web`].

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::tls::AdminTls;
use super::web::{self, Peer, Web};

/// Time a browser has to finish the TLS handshake.
const TLS_DEADLINE: Duration = Duration::from_secs(10);
/// Time a browser has to send a request's headers (slowloris ends here).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head buffered (headers of a browser request are a few KiB).
pub const MAX_HEAD: usize = 64 * 1024;

/// Accepts HTTPS connections until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    tls: AdminTls,
    web: Arc<Web>,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls.config.clone());
    let router = web::router(web);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let peer = crate::net::canonical(peer);
        if !web::is_lan(peer.ip()) {
            // Whatever address the listener is on (a mapping someone else opened, a
            // misconfigured bind), the admin UI is for the LAN: close without a byte.
            tracing::warn!(%peer, "admin UI: refused a connection from outside the LAN");
            drop(tcp);
            continue;
        }
        let acceptor = acceptor.clone();
        let router = router.clone().layer(Extension(Peer(peer)));
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let Ok(Ok(stream)) = tokio::time::timeout(TLS_DEADLINE, acceptor.accept(tcp)).await
            else {
                tracing::debug!(%peer, "admin TLS handshake failed");
                return;
            };
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEAD);
            let conn =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r {
                    tracing::debug!(%peer, "admin connection: {e}");
                },
                // Live camera views never end by themselves: end them at shutdown.
                _ = shutdown.cancelled() => {}
            }
        });
    }
}
