//! The app's secret store (Keychain, Android Keystore) as the library's `KeyStore`.

use std::sync::Arc;

use latchkey_client::{KeyStore, KeyStoreError, Secret};

/// A failure the app's secret store reports.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum SecretStoreError {
    /// The store failed (locked, full, denied); say why without the secret.
    #[error("{reason}")]
    Failed {
        /// Why.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for SecretStoreError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Failed { reason: e.reason }
    }
}

/// Named secrets the app keeps in the platform's key store. Names are short ASCII
/// (`latchkey.<home>.device_key`); values are raw bytes. Keep them on this device only
/// (Keychain: `kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly`, not synchronised).
#[uniffi::export(with_foreign)]
pub trait SecretStore: Send + Sync {
    /// The secret called `name`, or `None`.
    fn get(&self, name: String) -> Result<Option<Vec<u8>>, SecretStoreError>;
    /// Stores `value` as `name`, replacing any other.
    fn put(&self, name: String, value: Vec<u8>) -> Result<(), SecretStoreError>;
    /// Deletes `name` (a missing secret is not an error).
    fn delete(&self, name: String) -> Result<(), SecretStoreError>;
}

/// The foreign store seen as the library's key store.
pub(crate) struct Bridge(pub Arc<dyn SecretStore>);

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretStore(app)")
    }
}

fn failed(e: SecretStoreError) -> KeyStoreError {
    KeyStoreError(e.to_string())
}

impl KeyStore for Bridge {
    fn get(&self, name: &str) -> Result<Option<Secret>, KeyStoreError> {
        Ok(self
            .0
            .get(name.to_string())
            .map_err(failed)?
            .map(Secret::new))
    }

    fn put(&self, name: &str, secret: &Secret) -> Result<(), KeyStoreError> {
        self.0
            .put(name.to_string(), secret.expose().to_vec())
            .map_err(failed)
    }

    fn delete(&self, name: &str) -> Result<(), KeyStoreError> {
        self.0.delete(name.to_string()).map_err(failed)
    }
}
