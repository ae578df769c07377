//! The admin UI's audit log page: a filter form (device, camera, kind), one page of rows
//! with device ids shown by name, and newer/older links. Rendered with `maud`, which
//! escapes every interpolated value.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Html;
use latchkey_pairing::DeviceId;
use maud::{Markup, html};

use super::api::{AuditQuery, PER_PAGE};
use super::pages::{page, when};
use super::{Authed, Web};
use crate::admin::actions;
use crate::store::{AuditPage, DeviceRow};

/// `GET /audit`.
pub async fn audit(
    State(web): State<Arc<Web>>,
    Extension(a): Extension<Authed>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Html<String> {
    let q = q.map(|q| q.0).unwrap_or_default();
    let offset = (q.page() - 1).saturating_mul(PER_PAGE);
    let result = actions::audit(&web.gw, q.filter(), offset, PER_PAGE).await;
    let devices = web.gw.store.run(|s| s.devices()).await.unwrap_or_default();
    let cameras: Vec<String> = web.gw.cameras.configs().into_iter().map(|c| c.id).collect();
    let body = html! {
        (filters(&q, &devices, &cameras))
        @match &result {
            Err(e) => p class="error" { (e) },
            Ok(p) => {
                (rows(p, &devices))
                (pager(&q, p.total))
            }
        }
    };
    page(&web, Some(&a), "Audit log", body)
}

/// The filter form, the current choices selected.
fn filters(q: &AuditQuery, devices: &[DeviceRow], cameras: &[String]) -> Markup {
    let selected = |v: &Option<String>, x: &str| v.as_deref() == Some(x);
    html! {
        form method="get" action="/audit" class="filters" {
            label { "Device " select name="device" {
                option value="" { "any" }
                @for d in devices {
                    option value=(d.id) selected[selected(&q.device, d.id.as_str())] { (d.name) " (" (d.id) ")" }
                }
            } }
            label { "Camera " select name="camera" {
                option value="" { "any" }
                @for c in cameras {
                    option value=(c) selected[selected(&q.camera, c)] { (c) }
                }
            } }
            label { "Kind " input name="kind" value=(q.kind.as_deref().unwrap_or("")) placeholder="e.g. device-revoked" maxlength="64"; }
            button { "Filter" }
        }
    }
}

/// One page of rows; a device is shown by its name when it still has one.
fn rows(p: &AuditPage, devices: &[DeviceRow]) -> Markup {
    let names: HashMap<&str, &str> = devices
        .iter()
        .map(|d| (d.id.as_str(), d.name.as_str()))
        .collect();
    html! {
        table #audit {
            thead { tr {
                th { "#" } th { "When" } th { "Kind" } th { "Device" } th { "Camera" } th { "From" } th { "Detail" }
            } }
            tbody {
                @for r in &p.rows {
                    tr {
                        td { (r.id) }
                        td { (when(Some(r.at))) }
                        td { (r.kind) }
                        td { @if let Some(d) = r.device.as_ref().map(DeviceId::as_str) { (names.get(d).copied().unwrap_or(d)) } }
                        td { (r.camera.as_deref().unwrap_or("")) }
                        td { (r.addr.as_deref().unwrap_or("")) }
                        td { (r.detail) }
                    }
                }
            }
        }
    }
}

/// "N entries · page i of n" with links to the newer and older pages, same filter.
fn pager(q: &AuditQuery, total: u64) -> Markup {
    let page_no = q.page();
    let pages = total.div_ceil(u64::from(PER_PAGE)).max(1);
    let link = |n: u32| {
        let mut qs = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("device", &q.device),
            ("camera", &q.camera),
            ("kind", &q.kind),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                qs.append_pair(k, v);
            }
        }
        qs.append_pair("page", &n.to_string());
        format!("/audit?{}", qs.finish())
    };
    html! {
        p class="pager" {
            (total) " entries · page " (page_no) " of " (pages) " "
            @if page_no > 1 { a href=(link(page_no - 1)) { "← newer" } " " }
            @if u64::from(page_no) < pages { a href=(link(page_no + 1)) { "older →" } }
        }
    }
}
