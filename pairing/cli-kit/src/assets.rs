//! Man pages and shell completions, generated from a CLI's clap definitions (by the
//! hidden `latchkey generate-assets DIR` and `latchkey-client generate-assets DIR`, which
//! the package build runs).

use std::path::Path;

use anyhow::Context as _;
use clap_complete::Shell;

/// Writes `NAME.1`, `NAME.bash`, `_NAME` (zsh) and `NAME.fish` into `dir`.
pub fn write(mut cmd: clap::Command, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = cmd.get_name().to_string();
    let page = dir.join(format!("{name}.1"));
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut out)
        .context("rendering the man page")?;
    std::fs::write(&page, out).with_context(|| format!("writing {}", page.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, &name, dir)
            .with_context(|| format!("writing the {shell} completion into {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_names_the_subcommands() {
        let cmd = clap::Command::new("latchkey")
            .about("gateway")
            .subcommand(clap::Command::new("backup").about("copy the store"));
        let dir = tempfile::tempdir().unwrap();
        write(cmd, dir.path()).unwrap();
        for file in ["latchkey.1", "latchkey.bash", "_latchkey", "latchkey.fish"] {
            let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
            assert!(text.contains("backup"), "{file}: {text}");
        }
    }
}
