//! Owner actions on cameras — list, add, edit (rename, new source, new credentials),
//! remove, test — written once for the admin socket, the web UI and owner phones.
//!
//! Cameras from the config file are shown (`origin: "config"`) but changed only in the
//! file. Cameras added here live in the store (`store::cameras`) and are applied to the
//! running hub at once. Passwords are write-only: nothing here returns, logs or puts one
//! into an error; a listing says `has_password` and shows the URL without credentials.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::actions::ActionError;
use super::camera_answers::{CameraListing, CameraRemoved, CameraSaved, Onvif, Origin, TestResult};
use crate::Gateway;
use crate::camera::{CameraOpener as _, CameraSource, Frame, RealOpener, jpeg_dimensions};
use crate::config::{CameraConfig, valid_camera_id};
use crate::store::cameras::StoredCamera;
use crate::store::{Store, StoreError};

/// How long a test connection may take to deliver a first picture.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest user name or password accepted.
const MAX_CREDENTIAL: usize = 256;
/// Longest URL accepted.
const MAX_URL: usize = 2048;

/// A camera to add, or the changes to one.
#[derive(Clone, Default, Deserialize, Serialize)]
pub struct CameraInput {
    /// New id (add: the id; edit: a rename).
    #[serde(default)]
    pub id: Option<String>,
    /// Source URL; credentials in it are taken out and kept apart.
    #[serde(default)]
    pub url: Option<String>,
    /// User name (`""` clears it).
    #[serde(default)]
    pub username: Option<String>,
    /// Password (`""` clears it). Never echoed.
    #[serde(default)]
    pub password: Option<String>,
    /// Save without a test connection.
    #[serde(default)]
    pub skip_test: bool,
    /// What ONVIF reported, when added from ONVIF. Set only by the gateway's own ONVIF
    /// flow, never taken from a request.
    #[serde(skip)]
    pub onvif: Option<Box<crate::camera::onvif::Inspection>>,
}

impl std::fmt::Debug for CameraInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraInput")
            .field("id", &self.id)
            .field("url", &self.url.as_deref().map(redact_url))
            .field("username", &self.username)
            .field("has_password", &self.password.is_some())
            .finish_non_exhaustive()
    }
}

/// `url` with any `user:password@` taken out (for messages).
pub fn redact_url(url: &str) -> String {
    split_credentials(url).0
}

/// Splits `scheme://user:pass@host/path` into the URL without credentials and them.
fn split_credentials(url: &str) -> (String, Option<String>, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None, None);
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let (user, pass) = match userinfo.split_once(':') {
                Some((u, p)) => (u.to_string(), Some(p.to_string())),
                None => (userinfo.to_string(), None),
            };
            (format!("{scheme}://{host}{path}"), Some(user), pass)
        }
        None => (url.to_string(), None, None),
    }
}

fn invalid(msg: impl Into<String>) -> ActionError {
    ActionError::Invalid(msg.into())
}

fn store_err(op: &'static str) -> impl FnOnce(StoreError) -> ActionError {
    move |source| ActionError::Store {
        op,
        source: Box::new(source),
    }
}

async fn blocking<T: Send + 'static>(
    gw: &Arc<Gateway>,
    op: &'static str,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ActionError> {
    gw.store.run(f).await.map_err(store_err(op))
}

/// The source a stored camera opens.
pub fn source_of(cam: &StoredCamera) -> Result<CameraSource, String> {
    let mut source = CameraSource::parse(&cam.url)?;
    if let CameraSource::Rtsp {
        username, password, ..
    } = &mut source
    {
        username.clone_from(&cam.username);
        password.clone_from(&cam.password);
    }
    Ok(source)
}

fn check_credential(what: &str, v: &str) -> Result<(), ActionError> {
    if v.len() > MAX_CREDENTIAL || v.chars().any(char::is_control) {
        return Err(invalid(format!(
            "the {what} must be at most {MAX_CREDENTIAL} characters with no control characters"
        )));
    }
    Ok(())
}

/// Applies `input` onto `cam` (a fresh camera for an add), checking every field.
fn apply(cam: &mut StoredCamera, input: &CameraInput) -> Result<CameraSource, ActionError> {
    if let Some(id) = &input.id {
        if !valid_camera_id(id) {
            return Err(invalid(format!(
                "camera name {:?}: use 1 to 32 characters from a-z, 0-9, - and _",
                id.chars().take(40).collect::<String>()
            )));
        }
        cam.id.clone_from(id);
    }
    if let Some(url) = &input.url {
        let (bare, user, pass) = split_credentials(url.trim());
        if bare.len() > MAX_URL || bare.chars().any(char::is_control) {
            return Err(invalid(
                "the camera URL is too long or has control characters",
            ));
        }
        cam.url = bare;
        if user.is_some() {
            cam.username = user;
            cam.password = pass;
        }
    }
    if let Some(user) = &input.username {
        check_credential("user name", user)?;
        cam.username = (!user.is_empty()).then(|| user.clone());
    }
    if let Some(pass) = &input.password {
        check_credential("password", pass)?;
        cam.password = (!pass.is_empty()).then(|| pass.clone());
    }
    if let Some(onvif) = &input.onvif {
        cam.onvif = serde_json::to_string(onvif).ok();
    }
    let source = source_of(cam).map_err(|e| invalid(format!("camera {}: {e}", cam.id)))?;
    if cam.username.is_some() && !matches!(source, CameraSource::Rtsp { .. }) {
        return Err(invalid(
            "a user name and password are only supported for rtsp:// cameras",
        ));
    }
    Ok(source)
}

fn is_from_config(gw: &Gateway, id: &str) -> bool {
    gw.config.cameras.iter().any(|c| c.id == id)
}

/// Every camera with its live status, where it comes from, its URL without credentials,
/// its user name and whether it has a password.
pub async fn list(gw: &Arc<Gateway>) -> Result<Vec<CameraListing>, ActionError> {
    let stored = blocking(gw, "reading cameras", |s| s.stored_cameras()).await?;
    let out = gw
        .cameras
        .statuses()
        .into_iter()
        .map(|status| {
            if let Some(c) = stored.iter().find(|c| c.id == status.id) {
                let onvif = c
                    .onvif
                    .as_deref()
                    .and_then(|o| serde_json::from_str(o).ok());
                return CameraListing {
                    origin: Origin::Store,
                    url: c.url.clone(),
                    username: c.username.clone(),
                    has_password: c.password.is_some(),
                    onvif: Some(Onvif(onvif)),
                    status,
                };
            }
            let (url, username, has_password) = match gw.cameras.source(&status.id) {
                Some(CameraSource::Rtsp {
                    url,
                    username,
                    password,
                }) => (url, username, password.is_some()),
                Some(CameraSource::Mjpeg(u)) => (format!("mjpeg+{u}"), None, false),
                Some(CameraSource::Snapshot(u)) => (format!("snapshot+{u}"), None, false),
                Some(CameraSource::Demo) | None => ("demo:".to_string(), None, false),
            };
            CameraListing {
                origin: Origin::Config,
                url: redact_url(&url),
                username,
                has_password,
                onvif: None,
                status,
            }
        })
        .collect();
    Ok(out)
}

/// Adds a camera: checks it, test-connects (unless `skip_test`), saves it and starts
/// serving it without a restart.
pub async fn add(
    gw: &Arc<Gateway>,
    input: CameraInput,
    by: &str,
) -> Result<CameraSaved, ActionError> {
    let Some(id) = input.id.clone() else {
        return Err(invalid("give the camera a name"));
    };
    if input.url.is_none() {
        return Err(invalid(
            "give the camera's URL (rtsp://host/path), or add it with --onvif",
        ));
    }
    if gw.cameras.source(&id).is_some() {
        return Err(ActionError::Conflict(format!(
            "there is already a camera {id:?}; pick another name or edit that one"
        )));
    }
    let mut cam = StoredCamera {
        id: id.clone(),
        url: String::new(),
        username: None,
        password: None,
        onvif: None,
    };
    let source = apply(&mut cam, &input)?;
    let tested = if input.skip_test {
        None
    } else {
        Some(test_source(&source).await?)
    };
    let saved = cam.clone();
    let by_owned = by.to_string();
    let now = gw.clock.unix_now();
    let inserted = blocking(gw, "saving the camera", move |s| {
        s.insert_camera(&saved, now, &by_owned)
    })
    .await?;
    if !inserted || !gw.cameras.add(&CameraConfig { id, source }) {
        return Err(ActionError::Conflict(format!(
            "there is already a camera {:?}",
            cam.id
        )));
    }
    tracing::info!(camera = %cam.id, url = %cam.url, "camera added by {by}");
    Ok(CameraSaved {
        id: cam.id,
        url: cam.url,
        test: tested,
        onvif: None,
    })
}

/// Changes camera `id`: a rename (grants follow), a new URL or new credentials. A new
/// source is applied to the running camera at once.
pub async fn edit(
    gw: &Arc<Gateway>,
    id: &str,
    input: CameraInput,
    by: &str,
) -> Result<CameraSaved, ActionError> {
    if is_from_config(gw, id) {
        return Err(ActionError::Conflict(format!(
            "camera {id:?} comes from the config file: change it there and restart"
        )));
    }
    let lookup = id.to_string();
    let Some(mut cam) = blocking(gw, "reading cameras", move |s| s.stored_camera(&lookup)).await?
    else {
        return Err(no_such(id));
    };
    let source = apply(&mut cam, &input)?;
    if cam.id != id && gw.cameras.source(&cam.id).is_some() {
        return Err(ActionError::Conflict(format!(
            "there is already a camera {:?}",
            cam.id
        )));
    }
    let tested = if input.skip_test || input.url.is_none() && input.password.is_none() {
        None
    } else {
        Some(test_source(&source).await?)
    };
    let (old, saved, by_owned) = (id.to_string(), cam.clone(), by.to_string());
    let now = gw.clock.unix_now();
    let updated = blocking(gw, "saving the camera", move |s| {
        s.update_camera(&old, &saved, now, &by_owned)
    })
    .await?;
    if !updated
        || !gw.cameras.update(
            id,
            &CameraConfig {
                id: cam.id.clone(),
                source,
            },
        )
    {
        return Err(ActionError::Conflict(format!(
            "camera {id:?} changed meanwhile; list the cameras and try again"
        )));
    }
    tracing::info!(camera = %cam.id, was = %id, url = %cam.url, "camera changed by {by}");
    Ok(CameraSaved {
        id: cam.id,
        url: cam.url,
        test: tested,
        onvif: None,
    })
}

fn no_such(id: &str) -> ActionError {
    ActionError::NoSuchCamera(id.to_string())
}

/// Removes camera `id`: its grants go, its live streams end.
pub async fn remove(gw: &Arc<Gateway>, id: &str, by: &str) -> Result<CameraRemoved, ActionError> {
    if is_from_config(gw, id) {
        return Err(ActionError::Conflict(format!(
            "camera {id:?} comes from the config file: remove it there and restart"
        )));
    }
    let (owned, by_owned) = (id.to_string(), by.to_string());
    let now = gw.clock.unix_now();
    let deleted = blocking(gw, "removing the camera", move |s| {
        s.delete_camera(&owned, now, &by_owned)
    })
    .await?;
    if !deleted {
        return Err(no_such(id));
    }
    let viewers = gw.cameras.status(id).map_or(0, |s| s.viewers);
    gw.cameras.remove(id);
    tracing::info!(camera = %id, "camera removed by {by}");
    Ok(CameraRemoved {
        id: id.to_string(),
        streams_ended: viewers,
    })
}

/// Test-connects camera `id` (a fresh connection, beside any running one).
pub async fn test(gw: &Arc<Gateway>, id: &str) -> Result<TestResult, ActionError> {
    let Some(source) = gw.cameras.source(id) else {
        return Err(no_such(id));
    };
    test_source(&source).await
}

/// Opens `source`, waits for its first picture, and says what it is.
pub async fn test_source(source: &CameraSource) -> Result<TestResult, ActionError> {
    let attempt = async {
        let mut frames = RealOpener.open(source).await.map_err(|e| e.to_string())?;
        loop {
            match frames.next().await {
                None => return Err("the camera closed the stream before a picture".to_string()),
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(Frame::Video(v))) if v.keyframe => {
                    return Ok(TestResult {
                        codec: v.track.codec.to_string(),
                        width: v.track.mp4.width.into(),
                        height: v.track.mp4.height.into(),
                    });
                }
                Some(Ok(Frame::Jpeg(j))) => {
                    let (w, h) = jpeg_dimensions(&j).unwrap_or((0, 0));
                    return Ok(TestResult {
                        codec: "mjpeg".into(),
                        width: w.into(),
                        height: h.into(),
                    });
                }
                Some(Ok(Frame::Video(_))) => {}
            }
        }
    };
    match tokio::time::timeout(TEST_TIMEOUT, attempt).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(why)) => Err(ActionError::Conflict(format!(
            "the camera did not stream: {why} (check the address, user and password)"
        ))),
        Err(_) => Err(ActionError::Conflict(format!(
            "the camera sent no picture within {} s (check the address and path)",
            TEST_TIMEOUT.as_secs()
        ))),
    }
}

/// A camera request on the admin socket (`{"cmd":"camera","action":{"op":"add",…}}`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum CameraRequest {
    /// Add a camera.
    Add {
        /// The camera.
        camera: CameraInput,
    },
    /// Change a stored camera.
    Edit {
        /// Its current id.
        id: String,
        /// What changes.
        changes: CameraInput,
    },
    /// Remove a stored camera.
    Remove {
        /// Its id.
        id: String,
    },
    /// Test-connect a camera.
    Test {
        /// Its id.
        id: String,
    },
    /// WS-Discovery on every LAN interface, plus unicast probes to `addresses`.
    Discover {
        /// IP addresses to probe directly.
        #[serde(default)]
        addresses: Vec<String>,
        /// How long to listen, in milliseconds.
        wait_ms: u64,
    },
    /// What adding an ONVIF camera would choose (nothing is saved).
    OnvifInspect {
        /// The camera.
        target: super::cameras_onvif::OnvifTarget,
    },
    /// Add a camera from ONVIF.
    OnvifAdd {
        /// Its name.
        id: String,
        /// The camera.
        target: super::cameras_onvif::OnvifTarget,
        /// Save without a test connection.
        #[serde(default)]
        skip_test: bool,
    },
}

/// Carries out a [`CameraRequest`] for `by`.
pub async fn handle(
    gw: &Arc<Gateway>,
    request: CameraRequest,
    by: &str,
) -> Result<Value, ActionError> {
    match request {
        CameraRequest::Add { camera } => value(add(gw, camera, by).await),
        CameraRequest::Edit { id, changes } => value(edit(gw, &id, changes, by).await),
        CameraRequest::Remove { id } => value(remove(gw, &id, by).await),
        CameraRequest::Test { id } => value(test(gw, &id).await),
        CameraRequest::Discover { addresses, wait_ms } => value(
            super::cameras_onvif::discover(gw, &addresses, Duration::from_millis(wait_ms)).await,
        ),
        CameraRequest::OnvifInspect { target } => {
            value(super::cameras_onvif::inspect(&target).await)
        }
        CameraRequest::OnvifAdd {
            id,
            target,
            skip_test,
        } => value(super::cameras_onvif::add(gw, id, &target, skip_test, by).await),
    }
}

/// A typed answer as JSON, for [`handle`]'s doors that take any request.
fn value<T: Serialize>(r: Result<T, ActionError>) -> Result<Value, ActionError> {
    r.and_then(|v| {
        serde_json::to_value(v).map_err(|_| ActionError::Internal("encoding the answer"))
    })
}

/// Adds the stored cameras to the hub at start-up; ones whose id a config-file camera
/// took, or whose URL no longer parses, are skipped with a warning.
pub fn load_stored(store: &Store, hub: &crate::camera::hub::Hub) -> Result<(), StoreError> {
    for cam in store.stored_cameras()? {
        match source_of(&cam) {
            Ok(source) => {
                if !hub.add(&CameraConfig {
                    id: cam.id.clone(),
                    source,
                }) {
                    tracing::warn!(camera = %cam.id, "a config-file camera has the same id; the stored one is not served");
                }
            }
            Err(e) => tracing::warn!(camera = %cam.id, "stored camera not served: {e}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn split_and_apply() {
        let (url, user, pass) = split_credentials("rtsp://admin:se:cret@10.0.0.5:554/live");
        assert_eq!(url, "rtsp://10.0.0.5:554/live");
        assert_eq!(user.as_deref(), Some("admin"));
        assert_eq!(pass.as_deref(), Some("se:cret"));
        assert_eq!(redact_url("mjpeg+http://cam/v"), "mjpeg+http://cam/v");
        let mut cam = StoredCamera {
            id: "x".into(),
            url: String::new(),
            username: None,
            password: None,
            onvif: None,
        };
        let input = CameraInput {
            url: Some("rtsp://u:hunter2@10.0.0.9/a".into()),
            ..Default::default()
        };
        let source = apply(&mut cam, &input).unwrap();
        assert_eq!(cam.url, "rtsp://10.0.0.9/a");
        assert!(matches!(source, CameraSource::Rtsp { password: Some(p), .. } if p == "hunter2"));
        assert!(!format!("{input:?}").contains("hunter2"));
        let bad = CameraInput {
            url: Some("ftp://u:hunter2@x/".into()),
            ..Default::default()
        };
        let err = apply(&mut cam, &bad).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
