//! One SOAP 1.2 call to a camera over HTTP/1.1, bounded in time and size, with an
//! optional WS-Security UsernameToken (password digest) header.
//!
//! The digest is `base64(sha1(nonce ‖ created ‖ password))`, with `created` on the
//! camera's clock (ours plus the offset read from `GetSystemDateAndTime`), because
//! cameras refuse tokens more than a few minutes off their own clock, and camera clocks
//! are often wrong.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use sha1::{Digest as _, Sha1};
use tokio::net::TcpStream;

use super::OnvifError;
use super::xml::{self, MAX_XML, NS_SOAP, XmlError, clean, escape};

/// Time for one whole call: connect, send, headers and body.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A user name and password for a camera. `Debug` never shows the password.
#[derive(Clone)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix time `t`.
pub fn iso8601(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The WS-Security header for `creds` at camera time `camera_now`.
pub fn security_header(creds: &Credentials, camera_now: i64, nonce: &[u8; 16]) -> String {
    let created = iso8601(camera_now);
    let mut hash = Sha1::new();
    hash.update(nonce);
    hash.update(created.as_bytes());
    hash.update(creds.password.as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD;
    let digest = b64.encode(hash.finalize());
    format!(
        concat!(
            r#"<wsse:Security s:mustUnderstand="1" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" "#,
            r#"xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">"#,
            r#"<wsse:UsernameToken><wsse:Username>{user}</wsse:Username>"#,
            r#"<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">{digest}</wsse:Password>"#,
            r#"<wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-soap-message-security-1.0#Base64Binary">{nonce}</wsse:Nonce>"#,
            r#"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"#
        ),
        user = escape(&creds.username),
        digest = digest,
        nonce = b64.encode(nonce),
        created = created,
    )
}

/// A SOAP 1.2 envelope around `body`, with `header` inside `s:Header`.
pub fn envelope(header: &str, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{NS_SOAP}" xmlns:tds="{}" xmlns:trt="{}" xmlns:tt="{}"><s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"#,
        xml::NS_DEVICE,
        xml::NS_MEDIA,
        xml::NS_SCHEMA,
    )
}

/// POSTs `envelope` to `url` (an `http://` service address) and returns the answer's
/// bytes after checking its status. `op` names the call in errors.
pub async fn call(url: &url::Url, op: &'static str, envelope: String) -> Result<Bytes, OnvifError> {
    match tokio::time::timeout(CALL_TIMEOUT, exchange(url, op, envelope)).await {
        Ok(r) => r,
        Err(_) => Err(OnvifError::Timeout {
            op,
            secs: CALL_TIMEOUT.as_secs(),
        }),
    }
}

async fn exchange(url: &url::Url, op: &'static str, envelope: String) -> Result<Bytes, OnvifError> {
    if url.scheme() != "http" {
        return Err(OnvifError::Refused {
            op,
            reason: format!("service address scheme {:?} is not http", url.scheme()),
        });
    }
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let unreachable = |e: String| OnvifError::Unreachable {
        op,
        reason: clean(&format!("{host}:{port}: {e}"), 200),
    };
    let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let _abort = super::AbortOnDrop(conn);
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let request = Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(
            hyper::header::CONTENT_TYPE,
            "application/soap+xml; charset=utf-8",
        )
        .body(Full::new(Bytes::from(envelope)))
        .map_err(|e| unreachable(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status();
    if let Some(len) = response
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > MAX_XML as u64
    {
        return Err(OnvifError::Xml {
            op,
            source: XmlError::TooLarge,
        });
    }
    let body = Limited::new(response.into_body(), MAX_XML)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                OnvifError::Xml {
                    op,
                    source: XmlError::TooLarge,
                }
            } else {
                unreachable(e.to_string())
            }
        })?
        .to_bytes();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(OnvifError::NotAuthorized { op });
    }
    if !status.is_success() {
        // A SOAP fault explains itself; NotAuthorized is the one that matters.
        let reason = fault_reason(&body);
        if reason.contains("NotAuthorized")
            || reason.to_ascii_lowercase().contains("not authorized")
        {
            return Err(OnvifError::NotAuthorized { op });
        }
        return Err(OnvifError::Refused {
            op,
            reason: format!("HTTP {}: {reason}", status.as_u16()),
        });
    }
    Ok(body)
}

/// A SOAP fault's subcode and reason, or a note that there was none.
fn fault_reason(body: &[u8]) -> String {
    let Ok(doc) = xml::parse(body) else {
        return "no SOAP fault in the answer".into();
    };
    let root = doc.root_element();
    let code: Vec<String> = root
        .descendants()
        .filter(|n| n.has_tag_name((NS_SOAP, "Value")))
        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
        .collect();
    let text = xml::find(root, NS_SOAP, "Text")
        .and_then(|n| n.text())
        .unwrap_or("");
    clean(&format!("{} {}", code.join(" "), text.trim()), 200)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_798_761_600), "2027-01-01T00:00:00Z");
        assert_eq!(days_from_civil(2027, 1, 1) * 86_400, 1_798_761_600);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(iso8601(19_782 * 86_400 + 3_723), "2024-02-29T01:02:03Z");
    }

    #[test]
    fn digest_matches_the_ws_security_formula() {
        let creds = Credentials {
            username: "ad<min".into(),
            password: "pass".into(),
        };
        let header = security_header(&creds, 0, &[0u8; 16]);
        assert!(header.contains("<wsse:Username>ad&lt;min</wsse:Username>"));
        let mut h = Sha1::new();
        h.update([0u8; 16]);
        h.update(b"1970-01-01T00:00:00Z");
        h.update(b"pass");
        let want = base64::engine::general_purpose::STANDARD.encode(h.finalize());
        assert!(header.contains(&want));
        assert!(!header.contains(">pass<"));
        assert!(!format!("{creds:?}").contains("pass\""));
    }
}
