//! ONVIF: finding cameras on the LAN (`discovery`) and asking one for its streams.
//!
//! [`inspect`] does what an owner expects from "add camera": the camera's clock
//! (`GetSystemDateAndTime`, unauthenticated) to compute the offset for WS-Security, its
//! maker/model/firmware (`GetDeviceInformation`), the media service address
//! (`GetCapabilities`, falling back to the device service address), its profiles
//! (`GetProfiles`), then `GetStreamUri` for the chosen main stream (highest resolution
//! H.264/H.265) and sub-stream, and `GetSnapshotUri`. Every answer is bounded
//! (`xml`, `soap`) and every string from the camera is cleaned before it is shown.

pub mod discovery;
pub mod soap;
pub mod xml;

use rand::RngCore as _;

pub use soap::Credentials;
use xml::{NS_DEVICE, NS_MEDIA, NS_SCHEMA, XmlError, child, children, clean, escape, text_at};

/// Why talking ONVIF to a camera failed. Messages never contain the password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnvifError {
    /// The camera could not be reached.
    #[error("ONVIF {op}: cannot reach the camera ({reason}); check the address")]
    Unreachable {
        /// The call.
        op: &'static str,
        /// Why.
        reason: String,
    },
    /// The camera took too long.
    #[error("ONVIF {op}: the camera did not answer within {secs} s")]
    Timeout {
        /// The call.
        op: &'static str,
        /// The limit.
        secs: u64,
    },
    /// The user name or password was refused.
    #[error(
        "ONVIF {op}: the camera refused the user name or password; check them (and that the camera's ONVIF user exists)"
    )]
    NotAuthorized {
        /// The call.
        op: &'static str,
    },
    /// The answer was unusable XML.
    #[error("ONVIF {op}: {source}")]
    Xml {
        /// The call.
        op: &'static str,
        /// Why.
        #[source]
        source: XmlError,
    },
    /// The camera answered with an error or something unusable.
    #[error("ONVIF {op}: {reason}")]
    Refused {
        /// The call.
        op: &'static str,
        /// Why.
        reason: String,
    },
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The answer shapes are the shared ones of PROTOCOL.md §7 (`latchkey_pairing::api_types`).
pub use latchkey_pairing::api_types::{
    OnvifDevice as DeviceInfo, OnvifInspection as Inspection, OnvifProfile as Profile,
    OnvifStream as Stream,
};

fn is_video(p: &Profile) -> bool {
    matches!(p.encoding.as_str(), "H264" | "H265")
}

fn pixels(p: &Profile) -> u64 {
    u64::from(p.width) * u64::from(p.height)
}

/// The device service URL for what the owner typed: `10.0.0.5`, `10.0.0.5:8080` or a
/// full `http://…/onvif/device_service`.
pub fn device_url(address: &str) -> Result<url::Url, OnvifError> {
    let text = if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}/onvif/device_service")
    };
    let url = url::Url::parse(&text).map_err(|e| OnvifError::Refused {
        op: "address",
        reason: clean(&format!("{address:?} is not an address ({e})"), 200),
    })?;
    if url.scheme() != "http" || url.host_str().is_none() {
        return Err(OnvifError::Refused {
            op: "address",
            reason: "use host[:port] or http://host[:port]/path".into(),
        });
    }
    Ok(url)
}

fn now() -> i64 {
    i64::try_from(crate::unix_now()).unwrap_or(i64::MAX)
}

/// Who is calling: credentials and the camera's clock offset.
struct Session {
    creds: Option<Credentials>,
    offset: i64,
}

impl Session {
    async fn call(
        &self,
        url: &url::Url,
        op: &'static str,
        body: &str,
    ) -> Result<bytes::Bytes, OnvifError> {
        let header = match &self.creds {
            Some(c) => {
                let mut nonce = [0u8; 16];
                rand::rngs::OsRng.fill_bytes(&mut nonce);
                soap::security_header(c, now().saturating_add(self.offset), &nonce)
            }
            None => String::new(),
        };
        soap::call(url, op, soap::envelope(&header, body)).await
    }
}

/// Runs `f` on the SOAP body of `bytes`.
fn with_body<T>(
    bytes: &[u8],
    op: &'static str,
    f: impl FnOnce(roxmltree::Node<'_, '_>) -> Option<T>,
    missing: &str,
) -> Result<T, OnvifError> {
    let doc = xml::parse(bytes).map_err(|source| OnvifError::Xml { op, source })?;
    let body = xml::soap_body(&doc).map_err(|source| OnvifError::Xml { op, source })?;
    f(body).ok_or_else(|| OnvifError::Refused {
        op,
        reason: format!("the answer has no {missing} in the ONVIF namespaces"),
    })
}

/// The camera's clock minus ours, from `GetSystemDateAndTime` (unauthenticated).
pub async fn clock_offset(url: &url::Url) -> Result<i64, OnvifError> {
    const OP: &str = "GetSystemDateAndTime";
    let bytes = soap::call(url, OP, soap::envelope("", "<tds:GetSystemDateAndTime/>")).await?;
    let camera = with_body(
        &bytes,
        OP,
        |body| {
            let dt = xml::find(body, NS_SCHEMA, "UTCDateTime")?;
            let num = |a: &str, b: &str| -> Option<i64> {
                text_at(dt, &[(NS_SCHEMA, a), (NS_SCHEMA, b)])?.parse().ok()
            };
            let (y, mo, d) = (
                num("Date", "Year")?,
                num("Date", "Month")?,
                num("Date", "Day")?,
            );
            let (h, mi, s) = (
                num("Time", "Hour")?,
                num("Time", "Minute")?,
                num("Time", "Second")?,
            );
            let ok = (1970..=9999).contains(&y)
                && (1..=12).contains(&mo)
                && (1..=31).contains(&d)
                && (0..24).contains(&h)
                && (0..60).contains(&mi)
                && (0..=60).contains(&s);
            ok.then(|| {
                soap::days_from_civil(
                    y,
                    u32::try_from(mo).unwrap_or(1),
                    u32::try_from(d).unwrap_or(1),
                ) * 86_400
                    + h * 3600
                    + mi * 60
                    + s
            })
        },
        "valid UTCDateTime",
    )?;
    Ok(camera.saturating_sub(now()))
}

/// `GetDeviceInformation`, with credentials or without (many cameras answer it before
/// authentication; discovery uses that to show the firmware).
pub async fn device_info(
    url: &url::Url,
    creds: Option<Credentials>,
    offset: i64,
) -> Result<DeviceInfo, OnvifError> {
    const OP: &str = "GetDeviceInformation";
    let session = Session { creds, offset };
    let bytes = session.call(url, OP, "<tds:GetDeviceInformation/>").await?;
    with_body(
        &bytes,
        OP,
        |body| {
            let r = child(body, NS_DEVICE, "GetDeviceInformationResponse")?;
            let f = |name: &str| text_at(r, &[(NS_DEVICE, name)]).map(|t| clean(&t, 64));
            Some(DeviceInfo {
                maker: f("Manufacturer"),
                model: f("Model"),
                firmware: f("FirmwareVersion"),
                serial: f("SerialNumber"),
            })
        },
        "GetDeviceInformationResponse",
    )
}

fn parse_profiles(body: roxmltree::Node<'_, '_>) -> Option<Vec<Profile>> {
    let r = child(body, NS_MEDIA, "GetProfilesResponse")?;
    let profiles = children(r, NS_MEDIA, "Profiles")
        .take(64)
        .filter_map(|p| {
            let token = clean(p.attribute("token")?, 64);
            let name =
                text_at(p, &[(NS_SCHEMA, "Name")]).map_or_else(|| token.clone(), |n| clean(&n, 64));
            let vec = child(p, NS_SCHEMA, "VideoEncoderConfiguration");
            let encoding = vec
                .and_then(|v| text_at(v, &[(NS_SCHEMA, "Encoding")]))
                .map_or_else(|| "none".to_string(), |e| clean(&e, 16));
            let dim = |d: &str| {
                vec.and_then(|v| text_at(v, &[(NS_SCHEMA, "Resolution"), (NS_SCHEMA, d)]))
                    .and_then(|t| t.parse::<u32>().ok())
                    .unwrap_or(0)
                    .min(16_384)
            };
            Some(Profile {
                token,
                name,
                encoding,
                width: dim("Width"),
                height: dim("Height"),
            })
        })
        .collect();
    Some(profiles)
}

/// The main stream (highest resolution H.264/H.265) and the sub-stream (the next video
/// profile below it), unless the owner named either.
pub fn choose<'a>(
    profiles: &'a [Profile],
    main: Option<&str>,
    sub: Option<&str>,
) -> Result<(&'a Profile, Option<&'a Profile>), String> {
    let by_token = |t: &str| {
        profiles
            .iter()
            .find(|p| p.token == t)
            .ok_or_else(|| format!("the camera has no profile {:?}", clean(t, 64)))
    };
    let main = match main {
        Some(t) => by_token(t)?,
        None => profiles
            .iter()
            .filter(|p| is_video(p))
            .max_by_key(|p| (pixels(p), p.encoding == "H264"))
            .ok_or("the camera has no H.264 or H.265 profile")?,
    };
    let sub = match sub {
        Some(t) => Some(by_token(t)?),
        None => profiles
            .iter()
            .filter(|p| is_video(p) && p.token != main.token && pixels(p) <= pixels(main))
            .max_by_key(|p| pixels(p)),
    };
    Ok((main, sub))
}

/// Inspects the camera at `address` with `creds`; `main`/`sub` override the choice.
pub async fn inspect(
    address: &str,
    creds: Credentials,
    main: Option<&str>,
    sub: Option<&str>,
) -> Result<Inspection, OnvifError> {
    let url = device_url(address)?;
    let offset = clock_offset(&url).await?;
    let device = device_info(&url, Some(creds.clone()), offset).await?;
    let session = Session {
        creds: Some(creds),
        offset,
    };
    let media = media_url(&session, &url).await;
    let bytes = session
        .call(&media, "GetProfiles", "<trt:GetProfiles/>")
        .await?;
    let profiles = with_body(&bytes, "GetProfiles", parse_profiles, "GetProfilesResponse")?;
    let (main_p, sub_p) = choose(&profiles, main, sub).map_err(|reason| OnvifError::Refused {
        op: "GetProfiles",
        reason,
    })?;
    let host = url.host_str().unwrap_or_default().to_string();
    let main_s = Stream {
        uri: stream_uri(&session, &media, &main_p.token, &host).await?,
        profile: main_p.clone(),
    };
    let sub_s = match sub_p {
        Some(p) => Some(Stream {
            uri: stream_uri(&session, &media, &p.token, &host).await?,
            profile: p.clone(),
        }),
        None => None,
    };
    let snapshot_uri = snapshot_uri(&session, &media, &main_p.token, &host)
        .await
        .ok();
    Ok(Inspection {
        address: url.to_string(),
        clock_offset_secs: offset,
        device,
        profiles,
        main: main_s,
        sub: sub_s,
        snapshot_uri,
    })
}

/// The media service address from `GetCapabilities`, else the device service address
/// (many cameras serve every service there). Only an address on the camera's own host
/// is used: a camera cannot send the gateway elsewhere.
async fn media_url(session: &Session, device: &url::Url) -> url::Url {
    let body = "<tds:GetCapabilities><tds:Category>Media</tds:Category></tds:GetCapabilities>";
    let Ok(bytes) = session.call(device, "GetCapabilities", body).await else {
        return device.clone();
    };
    let found = with_body(
        &bytes,
        "GetCapabilities",
        |b| {
            let media = xml::find(b, NS_SCHEMA, "Media")?;
            text_at(media, &[(NS_SCHEMA, "XAddr")])
        },
        "Media XAddr",
    );
    match found.ok().and_then(|t| url::Url::parse(&t).ok()) {
        Some(u) if u.scheme() == "http" && u.host_str() == device.host_str() => u,
        _ => device.clone(),
    }
}

/// Puts `host` into `uri` when the camera reported an unusable host (0.0.0.0, loopback:
/// cameras behind NAT or with a stale DHCP address do).
fn fix_host(uri: &str, host: &str, scheme: &str) -> Result<String, String> {
    let mut u = url::Url::parse(uri).map_err(|e| format!("bad URI from the camera ({e})"))?;
    if u.scheme() != scheme {
        return Err(format!(
            "the camera gave a {} URI where {scheme} was expected",
            clean(u.scheme(), 16)
        ));
    }
    // rtsp:// is not a "special" scheme to the URL standard: its host stays text.
    let named = u.host_str().unwrap_or_default().trim_matches(['[', ']']);
    let bad = match named.parse::<std::net::IpAddr>() {
        Ok(a) => a.is_unspecified() || a.is_loopback(),
        Err(_) => named.is_empty() || named == "localhost",
    };
    if bad {
        u.set_host(Some(host))
            .map_err(|e| format!("cannot use host {host} ({e})"))?;
    }
    // Credentials never ride in the URI; the gateway keeps them apart.
    let _ = u.set_username("");
    let _ = u.set_password(None);
    Ok(u.to_string())
}

async fn stream_uri(
    session: &Session,
    media: &url::Url,
    token: &str,
    host: &str,
) -> Result<String, OnvifError> {
    let body = format!(
        "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup><trt:ProfileToken>{}</trt:ProfileToken></trt:GetStreamUri>",
        escape(token)
    );
    media_uri(session, media, "GetStreamUri", &body, host, "rtsp").await
}

async fn snapshot_uri(
    session: &Session,
    media: &url::Url,
    token: &str,
    host: &str,
) -> Result<String, OnvifError> {
    let body = format!(
        "<trt:GetSnapshotUri><trt:ProfileToken>{}</trt:ProfileToken></trt:GetSnapshotUri>",
        escape(token)
    );
    media_uri(session, media, "GetSnapshotUri", &body, host, "http").await
}

/// One media-service call answering a `MediaUri`, with the host fixed up as for streams.
async fn media_uri(
    session: &Session,
    media: &url::Url,
    op: &'static str,
    body: &str,
    host: &str,
    scheme: &str,
) -> Result<String, OnvifError> {
    let bytes = session.call(media, op, body).await?;
    let uri = with_body(
        &bytes,
        op,
        |b| text_at(xml::find(b, NS_MEDIA, "MediaUri")?, &[(NS_SCHEMA, "Uri")]),
        "MediaUri",
    )?;
    fix_host(&uri, host, scheme).map_err(|reason| OnvifError::Refused { op, reason })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(token: &str, enc: &str, w: u32, h: u32) -> Profile {
        Profile {
            token: token.into(),
            name: token.into(),
            encoding: enc.into(),
            width: w,
            height: h,
        }
    }

    #[test]
    fn main_is_the_largest_video_profile_and_sub_the_next() {
        let profiles = [
            p("jpeg", "JPEG", 4000, 3000),
            p("sub", "H264", 640, 360),
            p("main", "H265", 2560, 1440),
            p("mid", "H264", 1280, 720),
        ];
        let (main, sub) = choose(&profiles, None, None).unwrap();
        assert_eq!(
            (main.token.as_str(), sub.map(|s| s.token.as_str())),
            ("main", Some("mid"))
        );
        let (main, sub) = choose(&profiles, Some("mid"), Some("sub")).unwrap();
        assert_eq!(
            (main.token.as_str(), sub.map(|s| s.token.as_str())),
            ("mid", Some("sub"))
        );
        assert!(choose(&profiles, Some("nope"), None).is_err());
        assert!(choose(&[p("j", "JPEG", 1, 1)], None, None).is_err());
    }

    #[test]
    fn stream_uris_get_the_cameras_host_when_they_name_none() {
        assert_eq!(
            fix_host("rtsp://0.0.0.0:554/s", "10.0.0.5", "rtsp").unwrap(),
            "rtsp://10.0.0.5:554/s"
        );
        assert_eq!(
            fix_host("rtsp://u:p@10.0.0.6/s", "10.0.0.5", "rtsp").unwrap(),
            "rtsp://10.0.0.6/s"
        );
        assert!(fix_host("http://10.0.0.6/s", "10.0.0.5", "rtsp").is_err());
        assert_eq!(
            device_url("10.0.0.5:8080").unwrap().as_str(),
            "http://10.0.0.5:8080/onvif/device_service"
        );
        assert!(device_url("ftp://x").is_err());
    }
}
