//! Owner actions for ONVIF cameras: discover them on the LAN, inspect one (what would be
//! chosen), and add one from its address, user and password.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::actions::ActionError;
use super::cameras::{self, CameraInput};
use crate::Gateway;
use crate::camera::CameraSource;
use crate::camera::onvif::{self, Credentials, Inspection, OnvifError, discovery};
use latchkey_pairing::api_types::OnvifFound;

/// A password in a request: `Debug` never shows it.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Longest discovery wait.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// What an ONVIF add or inspection needs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OnvifTarget {
    /// `host[:port]` or the device service URL.
    pub address: String,
    /// The camera's user.
    pub username: String,
    /// Its password.
    pub password: Secret,
    /// Override of the main profile (its token).
    #[serde(default)]
    pub main_profile: Option<String>,
    /// Override of the sub-stream profile.
    #[serde(default)]
    pub sub_profile: Option<String>,
}

/// An add-from-ONVIF request: `{"id": NAME, ...OnvifTarget}` (web UI and owner phones).
#[derive(Debug, Deserialize)]
pub struct OnvifAddBody {
    /// The new camera's id.
    pub id: String,
    /// Where the camera is and how to log in.
    #[serde(flatten)]
    pub target: OnvifTarget,
}

fn onvif_err(e: OnvifError) -> ActionError {
    ActionError::Conflict(e.to_string())
}

/// Host of a camera's source, for "already added".
fn source_host(source: &CameraSource) -> Option<String> {
    let url = match source {
        CameraSource::Rtsp { url, .. } => url.as_str(),
        CameraSource::Mjpeg(u) | CameraSource::Snapshot(u) => u.as_str(),
        CameraSource::Demo => return None,
    };
    url::Url::parse(url)
        .ok()?
        .host_str()
        .map(|h| h.trim_matches(['[', ']']).to_string())
}

/// Probes the LAN (and `addresses`) for `wait` and lists what answered, each marked with
/// the camera it already is, if any.
pub async fn discover(
    gw: &Arc<Gateway>,
    addresses: &[String],
    wait: Duration,
) -> Result<Vec<OnvifFound>, ActionError> {
    let mut unicast = Vec::new();
    for a in addresses {
        let ip: IpAddr = a.trim().parse().map_err(|_| {
            ActionError::Invalid(format!(
                "--address {:?}: give an IP address, e.g. 192.168.2.30",
                onvif::xml::clean(a, 64)
            ))
        })?;
        unicast.push(ip);
    }
    let found = discovery::discover(&unicast, wait.min(MAX_WAIT)).await;
    let configs = gw.cameras.configs();
    let out = found
        .into_iter()
        .map(|f| {
            let source = f.source.to_string();
            let already_added = configs
                .iter()
                .filter(|c| source_host(&c.source).as_deref() == Some(source.as_str()))
                .map(|c| c.id.clone())
                .collect();
            OnvifFound {
                source: f.source,
                xaddr: f.xaddr,
                endpoint: f.endpoint,
                device: f.device,
                note: f.note,
                already_added,
            }
        })
        .collect();
    Ok(out)
}

/// Asks the camera for its clock, identity and profiles, and says what would be chosen.
pub async fn inspect(target: &OnvifTarget) -> Result<Inspection, ActionError> {
    let creds = Credentials {
        username: target.username.clone(),
        password: target.password.0.clone(),
    };
    onvif::inspect(
        &target.address,
        creds,
        target.main_profile.as_deref(),
        target.sub_profile.as_deref(),
    )
    .await
    .map_err(onvif_err)
}

/// Adds camera `id` from ONVIF: inspect, then the ordinary add (test-connect, save,
/// serve) with the main stream's URI and the camera's credentials.
pub async fn add(
    gw: &Arc<Gateway>,
    id: String,
    target: &OnvifTarget,
    skip_test: bool,
    by: &str,
) -> Result<super::camera_answers::CameraSaved, ActionError> {
    if gw.cameras.source(&id).is_some() {
        return Err(ActionError::Conflict(format!(
            "there is already a camera {id:?}; pick another name"
        )));
    }
    let found = inspect(target).await?;
    let input = CameraInput {
        id: Some(id),
        url: Some(found.main.uri.clone()),
        username: Some(target.username.clone()),
        password: Some(target.password.0.clone()),
        skip_test,
        onvif: Some(Box::new(found.clone())),
    };
    let mut result = cameras::add(gw, input, by).await?;
    result.onvif = Some(found);
    Ok(result)
}
