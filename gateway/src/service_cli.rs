//! The service owner's commands behind `latchkey backup`, `restore` and `doctor`: run
//! them and print their outcome in plain words.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::admin::socket::{self, AdminRequest};
use crate::{backup, doctor};

/// The packaged service's config file, which `doctor` reads when given none.
pub const SERVICE_CONFIG: &str = "/etc/latchkey/latchkey.toml";

/// `latchkey backup FILE`.
pub fn backup(state: &Path, file: &Path) -> anyhow::Result<()> {
    let s = backup::backup(state, file)?;
    println!(
        "backed up {} devices (schema version {}) to {} (mode 0600)",
        s.devices,
        s.schema,
        file.display()
    );
    eprintln!("warning: {}", backup::WARNING);
    Ok(())
}

/// `latchkey restore FILE`.
pub async fn restore(state: &Path, file: &Path) -> anyhow::Result<()> {
    let running = socket::request(state, &AdminRequest::PairingStatus)
        .await
        .is_ok();
    let s = backup::restore(state, file, running)?;
    println!(
        "restored {} devices (schema version {}) into {}; start the gateway (sudo systemctl start latchkey) and the same phones are admitted",
        s.devices,
        s.schema,
        state.display()
    );
    Ok(())
}

/// `latchkey doctor`: prints every finding; fails when one needs fixing.
pub async fn doctor(state: PathBuf, config: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let config = config.or_else(|| {
        let p = PathBuf::from(SERVICE_CONFIG);
        p.exists().then_some(p)
    });
    let findings = doctor::run(&doctor::Options {
        state_dir: state,
        config,
    })
    .await;
    if json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for x in &findings {
            let mark = match x.level {
                doctor::Level::Ok => "ok  ",
                doctor::Level::Warn => "warn",
                doctor::Level::Fail => "FAIL",
            };
            println!("{mark} {:<10} {}", x.topic, x.text);
        }
    }
    let failed = findings
        .iter()
        .filter(|x| x.level == doctor::Level::Fail)
        .count();
    if failed > 0 {
        bail!("{failed} problem(s) need fixing (the FAIL lines above say how)");
    }
    Ok(())
}
