//! The admin UI's "Phone-home report" page (`/quarantine`) and its JSON
//! (`/api/quarantine/report`): what quarantined cameras tried, from
//! [`crate::admin::quarantine::report`]. Every camera-sent string is HTML-escaped (maud).
//! A page of its own (not in `pages.rs`), behind the same session guard.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use maud::{Markup, html};

use super::{Authed, Web};
use crate::quarantine::counters::Tally;
use crate::quarantine::report::{self, Report};

/// The routes.
pub fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/quarantine", get(page))
        .route("/api/quarantine/report", get(json))
}

fn filtered(web: &Web, uri: &Uri) -> Result<Report, Box<Response>> {
    let (camera, since) = crate::admin::quarantine::parse_query(uri.query()).ok_or_else(|| {
        Box::new(super::json_error(
            StatusCode::BAD_REQUEST,
            "expected ?camera=NAME&since=UNIX_SECONDS (both optional)",
        ))
    })?;
    Ok(crate::admin::quarantine::report(
        &web.gw,
        camera.as_deref(),
        since,
    ))
}

async fn json(State(web): State<Arc<Web>>, uri: Uri) -> Response {
    match filtered(&web, &uri) {
        Ok(r) => Json(r).into_response(),
        Err(e) => *e,
    }
}

async fn page(State(web): State<Arc<Web>>, Extension(a): Extension<Authed>, uri: Uri) -> Response {
    match filtered(&web, &uri) {
        Ok(r) => super::pages::page(&web, Some(&a), "Phone-home report", body(&r)).into_response(),
        Err(e) => *e,
    }
}

/// Count, first and last seen of one tally, as table cells.
fn cells(t: &Tally) -> Markup {
    html! {
        td { (report::thousands(t.count)) }
        td { (report::when(t.first)) }
        td { (report::when(t.last)) }
    }
}

/// The page's body; maud escapes every camera-sent string.
pub fn body(r: &Report) -> Markup {
    html! {
        @match &r.camera_port {
            Some(p) => p { "Camera port " code { (p) } " is on: cameras there reach only this gateway." },
            None => p { "The camera port is off. Below is what cameras tried while it was on." },
        }
        @if r.cameras.is_empty() {
            p { "Nothing recorded." }
        }
        @for c in &r.cameras {
            section.camera {
                h2 { (c.camera) " " small { (c.address) } }
                ul.summary {
                    @for s in report::sentences(c) { li { (s.trim()) } }
                }
                table.destinations {
                    thead { tr { th { "Protocol" } th { "Address" } th { "Port" } th { "Packets" } th { "First seen" } th { "Last seen" } } }
                    tbody {
                        @for d in &c.destinations {
                            tr { td { (d.proto.to_uppercase()) } td { (d.address) } td { (d.port) } (cells(&d.seen)) }
                        }
                    }
                }
                table.names {
                    thead { tr { th { "Name asked" } th { "Times" } th { "First seen" } th { "Last seen" } } }
                    tbody {
                        @for n in &c.names {
                            tr { td { (n.name) } (cells(&n.seen)) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::quarantine::counters::Counters;

    #[test]
    fn camera_strings_are_escaped() {
        let mut c = Counters::default();
        let ip = "10.78.0.2".parse().unwrap();
        c.camera(ip).name("<script>alert(1)</script>", 1, 5);
        let names = std::collections::HashMap::from([(ip, "front".to_string())]);
        let r = report::build(&c, &names, Some("cam0".into()), None, None);
        let html = body(&r).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
    }
}
