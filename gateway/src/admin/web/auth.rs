//! Who may use the admin UI: the one-time setup link, the owner's password (argon2id),
//! login back-off, and sessions with their CSRF tokens.
//!
//! Secrets held here are kept only as SHA-256 digests (the setup token, session ids) or
//! as a PHC string (the password): a memory or database dump hands out nothing usable.
//! Sessions live in memory only, so a restart logs everybody out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

/// How long the setup link printed at first start stays valid.
pub const SETUP_TTL: Duration = Duration::from_secs(15 * 60);
/// A session ends after this long without a request.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends after this long whatever happens.
pub const SESSION_MAX: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once; the oldest goes first.
const MAX_SESSIONS: usize = 32;
/// Failed logins from one address before back-off starts.
pub const FREE_FAILURES: u32 = 3;
/// Longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Addresses whose failures are remembered at once.
const MAX_TRACKED: usize = 1024;
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 10;
/// Longest password accepted (argon2 takes any length; a bound keeps the work bounded).
pub const MAX_PASSWORD: usize = 1024;

/// Why a password could not be set or checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The new password is too short or too long.
    #[error("the password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long")]
    BadLength,
    /// The stored hash cannot be read.
    #[error("the stored admin password hash is unreadable: {0}")]
    Corrupt(String),
    /// Hashing failed.
    #[error("hashing the password: {0}")]
    Hash(String),
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// argon2id with the RFC 9106 second recommended parameters scaled for a small box
/// (19 MiB, 2 passes), as OWASP suggests.
fn argon2() -> Result<Argon2<'static>, AuthError> {
    let params = Params::new(19 * 1024, 2, 1, None).map_err(|e| AuthError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a new password into a PHC string.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&password.chars().count()) {
        return Err(AuthError::BadLength);
    }
    let salt = SaltString::generate(&mut OsRng);
    argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Checks a password against a PHC string (constant time inside argon2).
pub fn verify_password(password: &str, phc: &str) -> Result<bool, AuthError> {
    if password.len() > MAX_PASSWORD * 4 {
        return Ok(false);
    }
    let parsed = PasswordHash::new(phc).map_err(|e| AuthError::Corrupt(e.to_string()))?;
    Ok(argon2()?
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// A logged-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    /// The token state-changing requests must echo in `X-CSRF-Token`.
    pub csrf: String,
    created: Instant,
    last: Instant,
}

/// What a login attempt may do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Check the password.
    Try,
    /// Too many failures: come back after this long, the password is not even checked.
    Wait(Duration),
}

#[derive(Debug)]
struct Failures {
    count: u32,
    until: Instant,
}

/// Authentication state of the admin UI.
#[derive(Debug, Default)]
pub struct Auth {
    setup: Mutex<Option<([u8; 32], Instant)>>,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl Auth {
    /// Mints the one-time setup token (replacing any earlier one) and returns it.
    pub fn new_setup_token(&self, now: Instant) -> String {
        let token = random_token();
        *self.setup.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((digest(&token), now + SETUP_TTL));
        token
    }

    /// Whether `token` is the live setup token (without using it up).
    pub fn setup_token_valid(&self, token: &str, now: Instant) -> bool {
        let guard = self.setup.lock().unwrap_or_else(|p| p.into_inner());
        matches!(&*guard, Some((h, until)) if *h == digest(token) && now < *until)
    }

    /// Uses up the setup token: true once, for the right token before it expires.
    pub fn take_setup_token(&self, token: &str, now: Instant) -> bool {
        let mut guard = self.setup.lock().unwrap_or_else(|p| p.into_inner());
        let ok = matches!(&*guard, Some((h, until)) if *h == digest(token) && now < *until);
        if ok {
            *guard = None;
        }
        ok
    }

    /// Gives the setup token back after a failure that was not the browser's fault
    /// (the store could not be written), so the owner can retry.
    pub fn restore_setup_token(&self, token: &str, now: Instant) {
        *self.setup.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((digest(token), now + SETUP_TTL));
    }

    /// Starts a session and returns its cookie value and CSRF token.
    pub fn new_session(&self, now: Instant) -> (String, Session) {
        let id = random_token();
        let session = Session {
            csrf: random_token(),
            created: now,
            last: now,
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| live(s, now));
        while sessions.len() >= MAX_SESSIONS {
            let oldest = sessions.iter().min_by_key(|(_, s)| s.last).map(|(k, _)| *k);
            match oldest {
                Some(k) => sessions.remove(&k),
                None => break,
            };
        }
        sessions.insert(digest(&id), session.clone());
        (id, session)
    }

    /// The live session for a cookie value, refreshed.
    pub fn session(&self, id: &str, now: Instant) -> Option<Session> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let key = digest(id);
        let s = sessions.get_mut(&key)?;
        if !live(s, now) {
            sessions.remove(&key);
            return None;
        }
        s.last = now;
        Some(s.clone())
    }

    /// Ends a session.
    pub fn end_session(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&digest(id));
    }

    /// Ends every session (after a password change).
    pub fn end_all_sessions(&self) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// May `ip` try a password now?
    pub fn gate(&self, ip: IpAddr, now: Instant) -> Gate {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failures.get(&ip) {
            Some(f) if now < f.until => Gate::Wait(f.until - now),
            _ => Gate::Try,
        }
    }

    /// Records a failed login from `ip`; returns how long it must now wait.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&ip) {
            // Forget the address whose back-off ends first; a flood of addresses cannot
            // grow this map.
            let first = failures
                .iter()
                .min_by_key(|(_, f)| f.until)
                .map(|(k, _)| *k);
            if let Some(k) = first {
                failures.remove(&k);
            }
        }
        let f = failures.entry(ip).or_insert(Failures {
            count: 0,
            until: now,
        });
        f.count = f.count.saturating_add(1);
        let wait = backoff(f.count);
        f.until = now + wait;
        wait
    }

    /// Forgets the failures of `ip` after a successful login.
    pub fn succeeded(&self, ip: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }
}

fn live(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last) < SESSION_IDLE && now.duration_since(s.created) < SESSION_MAX
}

/// The wait after `count` consecutive failures: none for the first few, then doubling
/// from one second up to [`MAX_BACKOFF`].
pub fn backoff(count: u32) -> Duration {
    if count < FREE_FAILURES {
        return Duration::ZERO;
    }
    let exp = (count - FREE_FAILURES).min(16);
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::clock::Clock;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::ZERO);
        assert_eq!(backoff(3), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(2));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn failures_gate_only_their_address() {
        let auth = Auth::default();
        let now = Clock::simulated(1_000_000).instant();
        let a: IpAddr = "192.168.1.5".parse().unwrap();
        let b: IpAddr = "192.168.1.6".parse().unwrap();
        for _ in 0..3 {
            auth.failed(a, now);
        }
        assert!(matches!(auth.gate(a, now), Gate::Wait(_)));
        assert_eq!(auth.gate(b, now), Gate::Try);
        assert_eq!(auth.gate(a, now + Duration::from_secs(2)), Gate::Try);
        auth.succeeded(a);
        assert_eq!(auth.gate(a, now), Gate::Try);
    }

    #[test]
    fn setup_token_is_single_use_and_expires() {
        let auth = Auth::default();
        let now = Clock::simulated(1_000_000).instant();
        let t = auth.new_setup_token(now);
        assert!(!auth.take_setup_token("wrong", now));
        assert!(!auth.take_setup_token(&t, now + SETUP_TTL));
        assert!(auth.take_setup_token(&t, now));
        assert!(!auth.take_setup_token(&t, now));
    }

    #[test]
    fn passwords_hash_and_verify() {
        assert!(matches!(hash_password("short"), Err(AuthError::BadLength)));
        let phc = hash_password("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &phc).unwrap());
        assert!(!verify_password("wrong horse battery", &phc).unwrap());
        assert!(verify_password("x", "not a phc string").is_err());
    }

    #[test]
    fn sessions_expire_when_idle_and_end() {
        let auth = Auth::default();
        let now = Clock::simulated(1_000_000).instant();
        let (id, s) = auth.new_session(now);
        assert_eq!(auth.session(&id, now).unwrap().csrf, s.csrf);
        assert!(auth.session("other", now).is_none());
        assert!(auth.session(&id, now + SESSION_IDLE).is_none());
        let (id, _) = auth.new_session(now);
        auth.end_session(&id);
        assert!(auth.session(&id, now).is_none());
    }

    #[test]
    fn a_backed_off_address_may_try_again_exactly_when_its_wait_ends() {
        let (auth, clock) = (Auth::default(), Clock::simulated(1_000_000));
        let a: IpAddr = "192.168.1.5".parse().unwrap();
        let waits: Vec<Duration> = (0..4).map(|_| auth.failed(a, clock.instant())).collect();
        assert_eq!(waits.last(), Some(&Duration::from_secs(2)));
        clock.advance(Duration::from_millis(1999));
        let left = Duration::from_millis(1);
        assert_eq!(auth.gate(a, clock.instant()), Gate::Wait(left));
        clock.advance(left);
        assert_eq!(auth.gate(a, clock.instant()), Gate::Try);
    }
}
