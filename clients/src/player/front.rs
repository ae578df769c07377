//! The player's one channel to the gateway: opened on demand, reopened when it closed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::Method;
use hyper::body::Incoming;
use tokio::sync::Mutex;

use crate::{ClientError, Connection, LiveFormat};

/// Opens a new connection to the home (the CLI's state directory, or a [`crate::Phone`]'s home).
pub type Connector = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<Connection, ClientError>> + Send>> + Send + Sync,
>;

/// The shared channel.
pub struct Front {
    connector: Connector,
    conn: Mutex<Option<Arc<Connection>>>,
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front").finish_non_exhaustive()
    }
}

impl Front {
    /// A front that connects with `connector` when first asked.
    pub fn new(connector: Connector) -> Self {
        Self {
            connector,
            conn: Mutex::new(None),
        }
    }

    /// The shared channel, (re)connecting if there is none or it closed.
    async fn connection(&self, fresh: bool) -> Result<Arc<Connection>, ClientError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && !fresh
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let c = Arc::new((self.connector)().await?);
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Sends `path` to the gateway, retrying once on a fresh channel if the old one died.
    pub async fn forward(&self, path: &str) -> Result<hyper::Response<Incoming>, ClientError> {
        let conn = self.connection(false).await?;
        match conn.request(Method::GET, path).await {
            Ok(r) => Ok(r),
            Err(ClientError::Http { .. }) => {
                let conn = self.connection(true).await?;
                conn.request(Method::GET, path).await
            }
            Err(e) => Err(e),
        }
    }

    /// A camera's live stream (an error status becomes an error).
    pub async fn live(
        &self,
        camera: &str,
        format: LiveFormat,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        let conn = self.connection(false).await?;
        match conn.live(camera, format).await {
            Err(ClientError::Http { .. }) => {
                self.connection(true).await?.live(camera, format).await
            }
            other => other,
        }
    }
}
