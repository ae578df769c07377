//! The owner's quarantine actions, written once for the admin socket, the web UI and
//! owner phones: the phone-home report and the lockdown plan for the owner's router.

use crate::Gateway;
use crate::quarantine::lockdown::{self, LockedCamera, Plan};
use crate::quarantine::{camera_ip, report::Report};

/// The phone-home report, for one camera (name or address) or all, optionally only what
/// was seen at or after `since` (Unix seconds).
pub fn report(gw: &Gateway, camera: Option<&str>, since: Option<u64>) -> Report {
    gw.quarantine.report(&gw.cameras.configs(), camera, since)
}

/// Which cameras the router rules cover: each camera at a literal address, its MAC from
/// the neighbour table, the gateway's address towards it.
pub fn lockdown_plan(gw: &Gateway) -> Plan {
    let arp = std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
    let mut plan = Plan {
        cameras: Vec::new(),
        skipped: Vec::new(),
    };
    for c in gw.cameras.configs() {
        let Some(address) = camera_ip(&c.source) else {
            plan.skipped.push(format!(
                "{} (not at an IP address the rules can name)",
                c.id
            ));
            continue;
        };
        let Some(gateway) = lockdown::local_address_towards(address) else {
            plan.skipped
                .push(format!("{} (no route from the gateway to {address})", c.id));
            continue;
        };
        plan.cameras.push(LockedCamera {
            name: c.id.clone(),
            address,
            mac: lockdown::mac_of(address, &arp),
            gateway,
        });
    }
    plan
}

/// `camera=NAME&since=UNIX` (both optional) from a query string; `None` when malformed.
pub fn parse_query(query: Option<&str>) -> Option<(Option<String>, Option<u64>)> {
    let (mut camera, mut since) = (None, None);
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "camera" if !v.is_empty() => camera = Some(v.into_owned()),
            "since" if !v.is_empty() => since = Some(v.parse().ok()?),
            "camera" | "since" => {}
            _ => return None,
        }
    }
    Some((camera, since))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_strictly() {
        assert_eq!(parse_query(None), Some((None, None)));
        assert_eq!(
            parse_query(Some("camera=front&since=5")),
            Some((Some("front".into()), Some(5)))
        );
        assert_eq!(parse_query(Some("since=x")), None);
        assert_eq!(parse_query(Some("other=1")), None);
    }
}
