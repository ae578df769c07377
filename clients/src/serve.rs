//! `latchkey-client serve`: the player endpoint ([`crate::player`]) for the CLI's state
//! directory, on the address the user chose, with the same token and `Host` checks.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::StateDir;
use crate::player::{Connector, Endpoint};

/// The endpoint for `listener`; its [`Endpoint::base_url`] is what to print.
pub fn endpoint(listener: &TcpListener, dir: StateDir) -> std::io::Result<Endpoint> {
    let connector: Connector = Arc::new(move || {
        let dir = dir.clone();
        Box::pin(async move { crate::connect(&dir).await })
    });
    Endpoint::new(listener, connector)
}
