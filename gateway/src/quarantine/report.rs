//! The phone-home report: what each quarantined camera tried, as typed data (the admin
//! socket, the web page and owner phones send the same JSON) and in plain words.
//!
//! Names and every other string a camera sent are data: the DNS responder already wrote
//! them in a safe alphabet, and each output escapes them again for its own medium.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::counters::{CameraTally, Counters, Tally};

/// One name a camera asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameSeen {
    /// The name (`\DDD` for bytes outside `a-z 0-9 - _`).
    pub name: String,
    /// Times, first and last seen.
    #[serde(flatten)]
    pub seen: Tally,
}

/// One destination a camera's packets were dropped on the way to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestSeen {
    /// `tcp` or `udp`.
    pub proto: String,
    /// Destination address.
    pub address: IpAddr,
    /// Destination port.
    pub port: u16,
    /// Packets, first and last seen.
    #[serde(flatten)]
    pub seen: Tally,
}

/// What one camera tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraReport {
    /// The camera's name, or its address when no camera is known there.
    pub camera: String,
    /// Its address on the camera port (`other` for sources past the cap).
    pub address: String,
    /// Names asked, most asked first.
    pub names: Vec<NameSeen>,
    /// Names past the per-camera cap, together.
    pub other_names: Tally,
    /// Destinations tried, most tried first.
    pub destinations: Vec<DestSeen>,
    /// Destinations past the cap, and packets that were neither TCP nor UDP.
    pub other_destinations: Tally,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The camera port's interface while it is on.
    pub camera_port: Option<String>,
    /// Only what was last seen at or after this time (Unix seconds), when asked.
    pub since: Option<u64>,
    /// Per camera, by name.
    pub cameras: Vec<CameraReport>,
}

fn keep(t: &Tally, since: Option<u64>) -> bool {
    t.count > 0 && since.is_none_or(|s| t.last >= s)
}

fn camera_report(
    name: String,
    address: String,
    t: &CameraTally,
    since: Option<u64>,
) -> CameraReport {
    let mut names: Vec<NameSeen> = t
        .names
        .iter()
        .filter(|(_, s)| keep(s, since))
        .map(|(n, s)| NameSeen {
            name: n.clone(),
            seen: *s,
        })
        .collect();
    names.sort_by(|a, b| b.seen.count.cmp(&a.seen.count).then(a.name.cmp(&b.name)));
    let mut destinations: Vec<DestSeen> = t
        .dests
        .iter()
        .filter(|(_, s)| keep(s, since))
        .map(|(d, s)| DestSeen {
            proto: d.proto.as_str().to_string(),
            address: d.addr,
            port: d.port,
            seen: *s,
        })
        .collect();
    destinations.sort_by(|a, b| {
        b.seen
            .count
            .cmp(&a.seen.count)
            .then((a.address, a.port).cmp(&(b.address, b.port)))
    });
    let other = |t: Tally| if keep(&t, since) { t } else { Tally::default() };
    CameraReport {
        camera: name,
        address,
        names,
        other_names: other(t.other_names),
        destinations,
        other_destinations: other(t.other_dests),
    }
}

/// The report from `counters`, naming each source by `names` (address → camera); only
/// the camera called (or at) `only`, and what was last seen at or after `since`.
pub fn build(
    counters: &Counters,
    names: &HashMap<IpAddr, String>,
    camera_port: Option<String>,
    only: Option<&str>,
    since: Option<u64>,
) -> Report {
    let mut cameras: Vec<CameraReport> = counters
        .cameras
        .iter()
        .map(|(ip, t)| {
            let name = names.get(ip).cloned().unwrap_or_else(|| ip.to_string());
            camera_report(name, ip.to_string(), t, since)
        })
        .collect();
    // Sources past the cap, always: their packets may be only in the "other" tallies
    // (empty rows are dropped below).
    cameras.push(camera_report(
        "other cameras".into(),
        "other".into(),
        &counters.other,
        since,
    ));
    cameras.retain(|c| only.is_none_or(|o| c.camera == o || c.address == o));
    cameras.retain(|c| {
        !(c.names.is_empty()
            && c.destinations.is_empty()
            && c.other_names.count == 0
            && c.other_destinations.count == 0)
    });
    cameras.sort_by(|a, b| a.camera.cmp(&b.camera));
    Report {
        camera_port,
        since,
        cameras,
    }
}

/// `1204` as `1,204`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A Unix time as `2026-12-02 08:00 UTC`.
pub fn when(t: u64) -> String {
    let s = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(t),
    )
    .to_string();
    // 2026-12-02T08:00:00Z
    match (s.get(..10), s.get(11..16)) {
        (Some(d), Some(hm)) => format!("{d} {hm} UTC"),
        _ => s,
    }
}

fn times(n: u64) -> String {
    if n == 1 {
        "once".into()
    } else {
        format!("{} times", thousands(n))
    }
}

/// The camera's report in plain words, one sentence a line. The text holds camera-sent
/// names: escape it for the medium it is shown in.
pub fn sentences(c: &CameraReport) -> Vec<String> {
    let mut out = Vec::new();
    let who = &c.camera;
    for d in &c.destinations {
        out.push(format!(
            "{who} tried to reach {} on {} {} {} since {} (last {})",
            d.address,
            d.proto.to_uppercase(),
            d.port,
            times(d.seen.count),
            when(d.seen.first),
            when(d.seen.last)
        ));
    }
    if c.other_destinations.count > 0 {
        out.push(format!(
            "{who} sent {} more packets to other destinations since {} (detail truncated: it tried more destinations than are recorded one by one; the count is complete)",
            thousands(c.other_destinations.count),
            when(c.other_destinations.first)
        ));
    }
    let n = c.names.len();
    let more = if c.other_names.count > 0 {
        format!(
            " (and {} queries for names past the first {n})",
            thousands(c.other_names.count)
        )
    } else {
        String::new()
    };
    out.push(format!(
        "{who} asked for {n} name{}{more}{}",
        if n == 1 { "" } else { "s" },
        if n == 0 { "" } else { ":" }
    ));
    for s in &c.names {
        out.push(format!(
            "  {} {} since {}",
            s.name,
            times(s.seen.count),
            when(s.seen.first)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::quarantine::counters::{Dest, Proto};

    #[test]
    fn the_report_names_cameras_and_speaks_plainly() {
        let mut c = Counters::default();
        let ip: IpAddr = "10.78.0.2".parse().unwrap();
        let t0 = 1_796_198_400; // 2026-12-02 08:00 UTC
        c.camera(ip).dest(
            Dest {
                proto: Proto::Udp,
                addr: "203.0.113.50".parse().unwrap(),
                port: 32100,
            },
            1204,
            t0,
        );
        for n in ["a.example", "b.example", "c.example"] {
            c.camera(ip).name(n, 2, t0 + 60);
        }
        let names = HashMap::from([(ip, "front".to_string())]);
        let r = build(&c, &names, Some("cam0".into()), None, None);
        let s = sentences(&r.cameras[0]);
        assert_eq!(
            s[0],
            "front tried to reach 203.0.113.50 on UDP 32100 1,204 times since 2026-12-02 08:00 UTC (last 2026-12-02 08:00 UTC)"
        );
        assert_eq!(s[1], "front asked for 3 names:");
        assert_eq!(build(&c, &names, None, Some("back"), None).cameras.len(), 0);
        assert_eq!(
            build(&c, &names, None, Some("10.78.0.2"), None)
                .cameras
                .len(),
            1
        );
        let later = build(&c, &names, None, None, Some(t0 + 30));
        assert!(later.cameras[0].destinations.is_empty());
        assert_eq!(later.cameras[0].names.len(), 3);
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
    }

    /// ATTACKS 44: sources past the cap whose packets are only in the "other" tallies
    /// (a camera spoofing many source addresses) still have their row in the report.
    #[test]
    fn sources_past_the_cap_are_reported_even_with_only_other_tallies() {
        let mut c = Counters::default();
        for i in 0..200u32 {
            let ip = IpAddr::from((0x0a64_0000 + i).to_be_bytes());
            c.camera(ip).other_dests.add(3, 100);
        }
        let r = build(&c, &HashMap::new(), None, None, None);
        let other = r.cameras.iter().find(|c| c.address == "other");
        let packets = other.map(|o| o.other_destinations.count);
        assert_eq!(packets, Some(3 * (200 - 64)), "{:?}", r.cameras.len());
        let s = sentences(other.unwrap());
        assert!(s[0].contains("408 more packets"), "{s:?}");
    }
}
