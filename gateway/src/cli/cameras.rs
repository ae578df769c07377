//! `latchkey cameras [add|edit|remove|test|discover]`: argument parsing and printing only;
//! the daemon does the work through the admin socket (`admin/cameras.rs`).

use std::io::BufRead as _;
use std::path::Path;

use clap::Subcommand;
use latchkey_gateway::admin::camera_answers::{
    CameraListing, CameraRemoved, CameraSaved, Discovered, Origin, TestResult,
};
use latchkey_gateway::admin::cameras::{CameraInput, CameraRequest};
use latchkey_gateway::admin::cameras_onvif::{OnvifTarget, Secret};
use latchkey_gateway::admin::socket::AdminRequest;
use latchkey_pairing::api_types::{OnvifFound, OnvifInspection, OnvifProfile};

use super::{ask, or_dash, text};

/// What to do with cameras.
#[derive(Subcommand, Debug)]
pub enum CamerasCommand {
    /// Add a camera by its URL or from ONVIF. It is test-connected, saved and served at once.
    Add {
        /// Its name (used in URLs and grants): 1 to 32 of a-z 0-9 - _.
        name: String,
        /// Source URL: rtsp://host[:port]/path, mjpeg+http://…, snapshot+http://….
        #[arg(long, required_unless_present = "onvif", conflicts_with = "onvif")]
        url: Option<String>,
        /// Ask the ONVIF camera at this address (host[:port] or its device service URL)
        /// for its streams: the main stream is its highest-resolution H.264/H.265 profile.
        #[arg(long, value_name = "ADDR")]
        onvif: Option<String>,
        /// With --onvif: use this profile (token) as the main stream instead.
        #[arg(long, requires = "onvif")]
        main_profile: Option<String>,
        /// With --onvif: use this profile (token) as the sub-stream.
        #[arg(long, requires = "onvif")]
        sub_profile: Option<String>,
        /// User name for the camera.
        #[arg(long)]
        user: Option<String>,
        /// Read the camera's password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Save without a test connection.
        #[arg(long)]
        no_test: bool,
    },
    /// Change a camera added at run time: rename it (grants follow), or give it a new URL,
    /// user or password (viewers are moved to the new source at once).
    Edit {
        /// Its current name.
        name: String,
        /// New name.
        #[arg(long)]
        rename: Option<String>,
        /// New source URL.
        #[arg(long)]
        url: Option<String>,
        /// New user name (empty: none).
        #[arg(long)]
        user: Option<String>,
        /// Read a new password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Save without a test connection.
        #[arg(long)]
        no_test: bool,
    },
    /// Remove a camera added at run time; its live streams end and grants drop it.
    Remove {
        /// Its name.
        name: String,
    },
    /// Connect to a camera now and report what it sends.
    Test {
        /// Its name.
        name: String,
    },
    /// Find ONVIF cameras: WS-Discovery on every LAN interface (multicast, TTL 1).
    Discover {
        /// Also probe this address directly (a camera on another subnet). Repeatable.
        #[arg(long = "address", value_name = "IP")]
        addresses: Vec<String>,
        /// How long to listen for answers.
        #[arg(long, default_value = "1500ms", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// What quarantined cameras tried to reach and which names they asked for.
    Report {
        /// One camera (name or address); all when left out.
        camera: Option<String>,
        /// Only what was seen since: a duration ago (2h) or a time (2026-12-02T08:00:00Z).
        #[arg(long, value_parser = crate::cli::quarantine::parse_since)]
        since: Option<u64>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Rules for your own router that let each camera talk to this gateway only.
    Lockdown {
        /// The rules' format.
        #[arg(long, value_enum)]
        print: crate::cli::quarantine::RuleFormat,
    },
}

/// Text from a camera, safe for a terminal (discovery already cleaned it; this keeps the
/// table aligned and shows a dash for nothing).
fn cell(v: Option<&str>) -> String {
    or_dash(v)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn print_discovered(all: &[OnvifFound]) {
    if all.is_empty() {
        println!("no ONVIF camera answered; check that it is on this LAN, or try --address IP");
        return;
    }
    println!(
        "{:<16} {:<24} {:<16} {:<24} {:<10} ADVERTISES",
        "ADDRESS", "MAKER", "MODEL", "FIRMWARE", "ADDED AS"
    );
    for f in all {
        let d = &f.device;
        println!(
            "{:<16} {:<24} {:<16} {:<24} {:<10} {}",
            f.source,
            cell(d.maker.as_deref()),
            cell(d.model.as_deref()),
            cell(d.firmware.as_deref()),
            if f.already_added.is_empty() {
                "-".to_string()
            } else {
                text(&f.already_added.join(","))
            },
            cell(f.xaddr.as_deref()),
        );
        if let Some(note) = &f.note {
            println!("{:<16} note: {}", "", cell(Some(note)));
        }
    }
}

fn describe(p: &OnvifProfile) -> String {
    format!(
        "profile {} ({}) {} {}x{}",
        cell(Some(&p.token)),
        cell(Some(&p.name)),
        cell(Some(&p.encoding)),
        p.width,
        p.height
    )
}

fn print_onvif_choice(o: &OnvifInspection) {
    let d = &o.device;
    println!(
        "ONVIF camera: {} {} firmware {} (clock {} s from ours)",
        cell(d.maker.as_deref()),
        cell(d.model.as_deref()),
        cell(d.firmware.as_deref()),
        o.clock_offset_secs
    );
    for (label, stream) in [
        ("main stream", Some(&o.main)),
        ("sub-stream ", o.sub.as_ref()),
    ] {
        match stream {
            Some(st) => println!(
                "  {label}: {} at {}",
                describe(&st.profile),
                cell(Some(&st.uri))
            ),
            None => println!("  {label}: none"),
        }
    }
    println!("  snapshot   : {}", cell(o.snapshot_uri.as_deref()));
    for p in &o.profiles {
        println!("  available  : {}", describe(p));
    }
    println!("  (choose others with --main-profile TOKEN / --sub-profile TOKEN)");
}

/// Reads one line (the password) from standard input.
fn password_from_stdin() -> anyhow::Result<String> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("camera password (shown as you type; pipe it in to hide it): ");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let pass = line.trim_end_matches(['\r', '\n']).to_string();
    if pass.is_empty() {
        anyhow::bail!("--password-stdin: standard input had no password on its first line");
    }
    Ok(pass)
}

fn tested(test: Option<&TestResult>) -> String {
    match test {
        None => "not tested".to_string(),
        Some(t) => format!("streams {} {}x{}", text(&t.codec), t.width, t.height),
    }
}

/// The admin request for a camera change.
fn build(command: CamerasCommand) -> anyhow::Result<CameraRequest> {
    Ok(match command {
        CamerasCommand::Add {
            name,
            onvif: Some(address),
            user,
            password_stdin,
            no_test,
            main_profile,
            sub_profile,
            ..
        } => CameraRequest::OnvifAdd {
            id: name,
            target: OnvifTarget {
                address,
                username: user.unwrap_or_else(|| "admin".to_string()),
                password: Secret(if password_stdin {
                    password_from_stdin()?
                } else {
                    String::new()
                }),
                main_profile,
                sub_profile,
            },
            skip_test: no_test,
        },
        CamerasCommand::Add {
            name,
            url,
            user,
            password_stdin,
            no_test,
            ..
        } => CameraRequest::Add {
            camera: CameraInput {
                id: Some(name),
                url,
                username: user,
                password: password_stdin.then(password_from_stdin).transpose()?,
                skip_test: no_test,
                onvif: None,
            },
        },
        CamerasCommand::Edit {
            name,
            rename,
            url,
            user,
            password_stdin,
            no_test,
        } => CameraRequest::Edit {
            id: name,
            changes: CameraInput {
                id: rename,
                url,
                username: user,
                password: password_stdin.then(password_from_stdin).transpose()?,
                skip_test: no_test,
                onvif: None,
            },
        },
        CamerasCommand::Remove { name } => CameraRequest::Remove { id: name },
        CamerasCommand::Test { name } => CameraRequest::Test { id: name },
        CamerasCommand::Discover { .. }
        | CamerasCommand::Report { .. }
        | CamerasCommand::Lockdown { .. } => {
            anyhow::bail!("internal: not a camera change")
        }
    })
}

/// Runs one `latchkey cameras …` subcommand against the daemon in `state`.
pub async fn run(state: &Path, command: CamerasCommand) -> anyhow::Result<()> {
    match command {
        CamerasCommand::Report {
            camera,
            since,
            json,
        } => return crate::cli::quarantine::report(state, camera, since, json).await,
        CamerasCommand::Lockdown { print } => {
            return crate::cli::quarantine::lockdown(state, print).await;
        }
        _ => {}
    }
    if let CamerasCommand::Discover {
        addresses,
        wait,
        json,
    } = command
    {
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let action = CameraRequest::Discover { addresses, wait_ms };
        let found: Discovered = ask(state, &AdminRequest::Camera { action }, json).await?;
        if !json {
            print_discovered(&found);
        }
        return Ok(());
    }
    let action = build(command)?;
    let req = AdminRequest::Camera { action };
    match &req {
        AdminRequest::Camera {
            action: CameraRequest::Remove { .. },
        } => {
            let r: CameraRemoved = ask(state, &req, false).await?;
            println!(
                "camera {} removed ({} live streams ended)",
                text(&r.id),
                r.streams_ended
            );
        }
        AdminRequest::Camera {
            action: CameraRequest::Test { .. },
        } => {
            let r: TestResult = ask(state, &req, false).await?;
            println!("{}", tested(Some(&r)));
        }
        AdminRequest::Camera { action } => {
            let op = if matches!(action, CameraRequest::Edit { .. }) {
                "changed"
            } else {
                "added"
            };
            let r: CameraSaved = ask(state, &req, false).await?;
            if let Some(o) = &r.onvif {
                print_onvif_choice(o);
            }
            println!(
                "camera {} {op}: {} ({})",
                text(&r.id),
                text(&r.url),
                tested(r.test.as_ref())
            );
        }
        _ => anyhow::bail!("internal: not a camera change"),
    }
    Ok(())
}

/// `latchkey cameras [--json]`: every camera's live status.
pub async fn list(state: &Path, json: bool) -> anyhow::Result<()> {
    let cameras: Vec<CameraListing> = ask(state, &AdminRequest::Cameras, json).await?;
    if json {
        return Ok(());
    }
    println!(
        "{:<16} {:<9} {:<7} {:<10} {:<6} {:<10} {:<7} {:<8} ERROR",
        "ID", "KIND", "FROM", "STATE", "CODEC", "SIZE", "VIEWERS", "UPSTREAM"
    );
    for c in &cameras {
        let st = &c.status;
        let size = match (st.width, st.height) {
            (Some(w), Some(h)) => format!("{w}x{h}"),
            _ => "-".to_string(),
        };
        let origin = match c.origin {
            Origin::Config => "config",
            Origin::Store => "store",
        };
        println!(
            "{:<16} {:<9} {:<7} {:<10} {:<6} {:<10} {:<7} {:<8} {}",
            text(&st.id),
            text(&st.kind),
            origin,
            st.state.as_str(),
            or_dash(st.codec.as_deref()),
            size,
            st.viewers,
            st.upstream_sessions,
            or_dash(st.error.as_deref())
        );
    }
    Ok(())
}
