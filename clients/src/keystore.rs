//! Where the phone keeps its secrets: a small get/put/delete interface the app implements
//! with the iOS Keychain or the Android Keystore, and a file store (mode 0600) for the CLI
//! and tests.
//!
//! Secrets are [`Secret`]s: zeroed when dropped, never shown by `Debug`, never put into an
//! error. Names are short ASCII (`latchkey.<home>.device_key`), safe as file names.

use std::fs;
use std::path::PathBuf;

use zeroize::Zeroizing;

/// Secret bytes (a device key, a session key): zeroed on drop, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The bytes, for the one place that uses them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why the key store failed: said without the secret or its bytes.
#[derive(Debug, thiserror::Error)]
#[error("the phone's key store failed ({0})")]
pub struct KeyStoreError(pub String);

/// Named secrets, kept where the platform keeps secrets.
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// The secret called `name`, if there is one.
    fn get(&self, name: &str) -> Result<Option<Secret>, KeyStoreError>;
    /// Stores `secret` as `name`, replacing any other.
    fn put(&self, name: &str, secret: &Secret) -> Result<(), KeyStoreError>;
    /// Deletes `name`; deleting a missing secret is not an error.
    fn delete(&self, name: &str) -> Result<(), KeyStoreError>;
}

/// Secrets as files of mode 0600 in a directory of mode 0700, replaced atomically.
#[derive(Debug, Clone)]
pub struct FileKeyStore {
    dir: PathBuf,
}

impl FileKeyStore {
    /// Uses `dir`, creating it (0700) if needed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, KeyStoreError> {
        let dir = dir.into();
        crate::state::private_dir(&dir).map_err(|e| KeyStoreError(e.to_string()))?;
        Ok(Self { dir })
    }

    fn path(&self, name: &str) -> Result<PathBuf, KeyStoreError> {
        let ok = !name.is_empty()
            && name.len() <= 128
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
        if ok {
            Ok(self.dir.join(format!("{name}.key")))
        } else {
            Err(KeyStoreError("a secret name is not a plain word".into()))
        }
    }
}

impl KeyStore for FileKeyStore {
    fn get(&self, name: &str) -> Result<Option<Secret>, KeyStoreError> {
        match fs::read(self.path(name)?) {
            Ok(bytes) => Ok(Some(Secret::new(bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(KeyStoreError(format!("reading {name}: {e}"))),
        }
    }

    fn put(&self, name: &str, secret: &Secret) -> Result<(), KeyStoreError> {
        let path = self.path(name)?;
        crate::state::write_private(&self.dir, &path, secret.expose())
            .map_err(|e| KeyStoreError(format!("writing {name}: {e}")))
    }

    fn delete(&self, name: &str) -> Result<(), KeyStoreError> {
        match fs::remove_file(self.path(name)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(KeyStoreError(format!("deleting {name}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn secrets_are_private_files_and_never_debug_printed() {
        let dir = std::env::temp_dir().join(format!("lk-keystore-{}", std::process::id()));
        let store = FileKeyStore::open(&dir).unwrap();
        let secret = Secret::new(b"hunter2-hunter2".to_vec());
        assert!(!format!("{secret:?}").contains("hunter2"));
        store.put("latchkey.home.device_key", &secret).unwrap();
        let file = dir.join("latchkey.home.device_key.key");
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(store.get("latchkey.home.device_key").unwrap(), Some(secret));
        store.delete("latchkey.home.device_key").unwrap();
        store.delete("latchkey.home.device_key").unwrap();
        assert_eq!(store.get("latchkey.home.device_key").unwrap(), None);
        assert!(store.put("../escape", &Secret::new(vec![1])).is_err());
        fs::remove_dir_all(dir).unwrap();
    }
}
