//! The admin UI's certificate: self-signed with rcgen on first start, then reused, so
//! the fingerprint the owner checked once stays the same across restarts.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// Certificate file in the state directory.
pub const CERT_FILE: &str = "admin-cert.pem";
/// Private key file in the state directory (mode 0600).
pub const KEY_FILE: &str = "admin-key.pem";

/// A ready TLS configuration and the certificate's fingerprint.
#[derive(Debug, Clone)]
pub struct AdminTls {
    /// rustls server configuration.
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the certificate DER, colon-separated hex.
    pub fingerprint: String,
}

/// Host names the certificate is made for, which are also the names the admin UI
/// answers to (besides its addresses).
pub fn names() -> Vec<String> {
    let mut names = vec!["latchkey.local".to_string(), "localhost".to_string()];
    if let Ok(host) = fs::read_to_string("/etc/hostname") {
        let host = host.trim().to_ascii_lowercase();
        if !host.is_empty() && host != "localhost" {
            names.push(format!("{host}.local"));
            names.push(host);
        }
    }
    names
}

/// Loads the persisted certificate or makes one.
pub fn load_or_create(dir: &Path) -> anyhow::Result<AdminTls> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    if !cert_path.exists() || !key_path.exists() {
        let made = rcgen::generate_simple_self_signed(names())
            .context("generating the admin certificate")?;
        write_private(&key_path, made.signing_key.serialize_pem().as_bytes())?;
        write_private(&cert_path, made.cert.pem().as_bytes())?;
    }
    let cert = CertificateDer::from_pem_file(&cert_path)
        .with_context(|| format!("reading {}", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("reading {}", key_path.display()))?;
    let fingerprint = fingerprint_of(cert.as_ref());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("configuring TLS")?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .context("loading the admin certificate")?;
    Ok(AdminTls {
        config: Arc::new(config),
        fingerprint,
    })
}

/// The SHA-256 fingerprint of a DER certificate, as browsers show it (`AB:CD:...`).
pub fn fingerprint_of(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The fingerprint of the certificate stored in `dir`, without creating one.
pub fn stored_fingerprint(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join(CERT_FILE);
    let cert = CertificateDer::from_pem_file(&path)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(fingerprint_of(cert.as_ref()))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}
