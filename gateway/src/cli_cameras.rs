//! `latchkey cameras add|edit|remove|test|discover`: argument parsing and printing only;
//! the daemon does the work through the admin socket (`admin/cameras.rs`).

use std::io::BufRead as _;
use std::path::Path;

use clap::Subcommand;
use latchkey_gateway::admin::cameras::{CameraInput, CameraRequest};
use latchkey_gateway::admin::socket::{self, AdminRequest};
use serde_json::Value;

use super::s;

/// What to do with cameras.
#[derive(Subcommand, Debug)]
pub enum CamerasCommand {
    /// Add a camera by its RTSP/HTTP URL. It is test-connected, saved and served at once.
    Add {
        /// Its name (used in URLs and grants): 1 to 32 of a-z 0-9 - _.
        name: String,
        /// Source URL: rtsp://host[:port]/path, mjpeg+http://…, snapshot+http://….
        #[arg(long)]
        url: String,
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

fn tested(result: &Value) -> String {
    let t = result.get("test").unwrap_or(&Value::Null);
    if t.is_null() {
        "not tested".to_string()
    } else {
        format!(
            "streams {} {}x{}",
            s(t, "codec"),
            s(t, "width"),
            s(t, "height")
        )
    }
}

/// Runs one `latchkey cameras …` subcommand against the daemon in `state`.
pub async fn run(state: &Path, command: CamerasCommand) -> anyhow::Result<()> {
    let action = match command {
        CamerasCommand::Add {
            name,
            url,
            user,
            password_stdin,
            no_test,
        } => CameraRequest::Add {
            camera: CameraInput {
                id: Some(name),
                url: Some(url),
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
    };
    let op = match &action {
        CameraRequest::Add { .. } => "added",
        CameraRequest::Edit { .. } => "changed",
        CameraRequest::Remove { .. } => "removed",
        CameraRequest::Test { .. } => "tested",
    };
    let result = socket::request(state, &AdminRequest::Camera { action }).await?;
    match op {
        "removed" => println!(
            "camera {} removed ({} live streams ended)",
            s(&result, "id"),
            s(&result, "streams_ended")
        ),
        "tested" => println!("{}", tested(&serde_json::json!({ "test": result }))),
        _ => println!(
            "camera {} {op}: {} ({})",
            s(&result, "id"),
            s(&result, "url"),
            tested(&result)
        ),
    }
    Ok(())
}
