//! The admin UI's "Phone-home report" page (`/quarantine`) and its JSON
//! (`/api/quarantine/report`): what quarantined cameras tried, from
//! [`crate::admin::quarantine::report`]. Every camera-sent string is HTML-escaped here.
//! A page of its own (not in `pages.rs`), behind the same session guard.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::Web;
use super::pages::esc;
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

async fn page(State(web): State<Arc<Web>>, uri: Uri) -> Response {
    match filtered(&web, &uri) {
        Ok(r) => Html(render(&web.gw.config.name, &r)).into_response(),
        Err(e) => *e,
    }
}

fn cell(t: &crate::quarantine::counters::Tally) -> String {
    format!(
        "<td>{}</td><td>{}</td><td>{}</td>",
        report::thousands(t.count),
        esc(&report::when(t.first)),
        esc(&report::when(t.last))
    )
}

/// The page's HTML.
pub fn render(gateway_name: &str, r: &Report) -> String {
    let mut body = String::new();
    body.push_str(&match &r.camera_port {
        Some(p) => format!(
            "<p>Camera port <code>{}</code> is on: cameras there reach only this gateway.</p>",
            esc(p)
        ),
        None => "<p>The camera port is off. Below is what cameras tried while it was on.</p>"
            .to_string(),
    });
    if r.cameras.is_empty() {
        body.push_str("<p>Nothing recorded.</p>");
    }
    for c in &r.cameras {
        body.push_str(&format!(
            "<section class=\"camera\"><h2>{} <small>{}</small></h2><ul class=\"summary\">",
            esc(&c.camera),
            esc(&c.address)
        ));
        for s in report::sentences(c) {
            body.push_str(&format!("<li>{}</li>", esc(s.trim())));
        }
        body.push_str("</ul><table class=\"destinations\"><thead><tr><th>Protocol</th><th>Address</th><th>Port</th><th>Packets</th><th>First seen</th><th>Last seen</th></tr></thead><tbody>");
        for d in &c.destinations {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td>{}</tr>",
                esc(&d.proto.to_uppercase()),
                esc(&d.address.to_string()),
                d.port,
                cell(&d.seen)
            ));
        }
        body.push_str("</tbody></table><table class=\"names\"><thead><tr><th>Name asked</th><th>Times</th><th>First seen</th><th>Last seen</th></tr></thead><tbody>");
        for n in &c.names {
            body.push_str(&format!(
                "<tr><td>{}</td>{}</tr>",
                esc(&n.name),
                cell(&n.seen)
            ));
        }
        body.push_str("</tbody></table></section>");
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Phone-home report · {name}</title><link rel=\"stylesheet\" href=\"/static/app.css\"></head>\
<body><header><strong>Latchkey · {name}</strong><nav><a href=\"/devices\">Devices</a><a href=\"/cameras\">Cameras</a>\
<a href=\"/quarantine\" aria-current=\"page\">Phone-home report</a></nav></header>\
<main><h1>Phone-home report</h1>{body}</main></body></html>",
        name = esc(gateway_name)
    )
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
        let html = render("Home <b>", &r);
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("Home &lt;b&gt;"));
    }
}
