//! `latchkey backup FILE` and `latchkey restore FILE`.
//!
//! A backup is one SQLite file: a consistent copy of the store made with SQLite's online
//! backup API (safe while the gateway runs and writes), plus a `backup_files` table with
//! the admin certificate and its key, so a restored gateway keeps the fingerprint the
//! owner checked. It is written mode 0600: it holds the gateway's private key and every
//! phone's session key. Restoring refuses while the gateway runs, checks the file first
//! (integrity, schema version not newer than this code, a gateway key present), then
//! replaces the store, migrates it, and gives the files to the state directory's owner.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use rusqlite::{Connection, DatabaseName, OpenFlags, OptionalExtension as _};

use crate::admin::tls::{CERT_FILE, KEY_FILE};
use crate::store::schema as store_schema;
use crate::store::{DB_FILE, Store};

/// The warning printed with every backup.
pub const WARNING: &str = "this file holds the gateway's private key and every paired phone's key: keep it as safe as the gateway itself (anyone with it can pose as your gateway)";

/// What a backup or restore copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Devices in the copy.
    pub devices: u64,
    /// Schema version of the copy.
    pub schema: u32,
}

fn summary(conn: &Connection) -> anyhow::Result<Summary> {
    let devices: i64 = conn
        .query_row("SELECT COUNT(*) FROM devices", [], |r| r.get(0))
        .context("counting devices")?;
    Ok(Summary {
        devices: u64::try_from(devices).unwrap_or(0),
        schema: store_schema::version(conn).context("reading the schema version")?,
    })
}

/// Copies the store in `state_dir` to `dest` (which must not exist yet), consistently
/// even while the gateway runs.
pub fn backup(state_dir: &Path, dest: &Path) -> anyhow::Result<Summary> {
    let db = state_dir.join(DB_FILE);
    if let Err(e) = fs::metadata(&db)
        && e.kind() == std::io::ErrorKind::PermissionDenied
    {
        bail!(
            "you may not read {}: back up as root (sudo latchkey backup FILE) or as the directory's owner",
            db.display()
        );
    }
    if !db.exists() {
        bail!(
            "there is no store at {} to back up (is --state right? the service's is /var/lib/latchkey)",
            db.display()
        );
    }
    let src = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("opening {}", db.display()))?;
    src.busy_timeout(std::time::Duration::from_secs(10))?;
    store_schema::check(&src).map_err(|e| anyhow::anyhow!("the store {} {e}", db.display()))?;
    // Create it 0600 before a byte is written; never overwrite.
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .with_context(|| {
            format!(
                "creating {} (it must not exist yet; choose a new name)",
                dest.display()
            )
        })?;
    let written = (|| -> anyhow::Result<Summary> {
        src.backup(DatabaseName::Main, dest, None)
            .context("copying the store")?;
        let out = Connection::open(dest)?;
        out.pragma_update(None, "journal_mode", "DELETE")?;
        out.execute_batch(
            "CREATE TABLE backup_files (name TEXT PRIMARY KEY, content BLOB NOT NULL)",
        )?;
        for name in [CERT_FILE, KEY_FILE] {
            match fs::read(state_dir.join(name)) {
                Ok(bytes) => {
                    out.execute(
                        "INSERT INTO backup_files (name, content) VALUES (?1, ?2)",
                        rusqlite::params![name, bytes],
                    )?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).context(format!("reading {name}")),
            }
        }
        summary(&out)
    })();
    drop(src);
    // Run as root, SQLite may have made a -wal/-shm file root's: give it back.
    let _ = give_files_to_owner(state_dir);
    match written {
        Ok(summary) => {
            fs::set_permissions(dest, fs::Permissions::from_mode(0o600))?;
            Ok(summary)
        }
        Err(e) => {
            let _ = fs::remove_file(dest);
            Err(e.context(format!("writing the backup {}", dest.display())))
        }
    }
}

/// Files carried in a backup: name and content.
type Files = Vec<(String, Vec<u8>)>;

/// Checks a backup file without changing it.
fn inspect(src: &Path) -> anyhow::Result<(Summary, Files)> {
    let conn = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", src.display()))?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .with_context(|| format!("{} is not a Latchkey backup", src.display()))?;
    if check != "ok" {
        bail!(
            "{} is damaged ({check}); nothing was restored",
            src.display()
        );
    }
    store_schema::check(&conn)
        .map_err(|e| anyhow::anyhow!("the backup {} {e}; nothing was restored", src.display()))?;
    let key: Option<i64> = conn
        .query_row("SELECT COUNT(*) FROM gateway", [], |r| r.get(0))
        .optional()
        .ok()
        .flatten();
    if key != Some(1) {
        bail!(
            "{} is not a Latchkey backup (no gateway key in it); nothing was restored",
            src.display()
        );
    }
    let mut files = Vec::new();
    let has_files: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE name = 'backup_files'",
        [],
        |r| r.get(0),
    )?;
    if has_files > 0 {
        let mut st = conn.prepare("SELECT name, content FROM backup_files")?;
        for row in st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
            files.push(row?);
        }
    }
    Ok((summary(&conn)?, files))
}

/// Replaces the store in `state_dir` with the backup `src`. `running` is whether a
/// gateway answers on the state directory's admin socket (then nothing is touched).
pub fn restore(state_dir: &Path, src: &Path, running: bool) -> anyhow::Result<Summary> {
    if running {
        bail!(
            "the gateway is running with state directory {}: stop it first (sudo systemctl stop latchkey), then restore",
            state_dir.display()
        );
    }
    let (found, files) = inspect(src)?;
    let owner = state_owner(state_dir)?;
    let db = state_dir.join(DB_FILE);
    for stale in [format!("{DB_FILE}-wal"), format!("{DB_FILE}-shm")] {
        match fs::remove_file(state_dir.join(&stale)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).context(format!("removing the old {stale}"));
            }
            _ => {}
        }
    }
    {
        let mut dst = Connection::open(&db).with_context(|| format!("opening {}", db.display()))?;
        dst.restore(
            DatabaseName::Main,
            src,
            None::<fn(rusqlite::backup::Progress)>,
        )
        .context("copying the backup into the store")?;
        dst.execute_batch("DROP TABLE IF EXISTS backup_files")?;
        dst.pragma_update(None, "journal_mode", "WAL")?;
        // Migrates a backup made by an older version.
        drop(dst);
    }
    drop(Store::open(state_dir).context("opening the restored store")?);
    for (name, bytes) in &files {
        if name != CERT_FILE && name != KEY_FILE {
            continue;
        }
        write_private(&state_dir.join(name), bytes)?;
    }
    give_to(state_dir, owner)?;
    Ok(found)
}

/// The state directory's owner (uid, gid), creating it (0700) if needed.
fn state_owner(state_dir: &Path) -> anyhow::Result<(u32, u32)> {
    fs::create_dir_all(state_dir).with_context(|| format!("creating {}", state_dir.display()))?;
    fs::set_permissions(state_dir, fs::Permissions::from_mode(0o700))?;
    let m = fs::metadata(state_dir)?;
    Ok((m.uid(), m.gid()))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp: PathBuf = path.with_extension("restoring");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Gives every file of the state directory to the directory's owner: run as root (for the
/// service's directory), SQLite may leave a `-wal` or `-shm` file that the service could
/// then not open.
pub fn give_files_to_owner(state_dir: &Path) -> anyhow::Result<()> {
    let m = fs::metadata(state_dir)?;
    give_to(state_dir, (m.uid(), m.gid()))
}

/// Gives every file of the state directory to `uid`/`gid` (restore may run as root for
/// a service user's directory).
fn give_to(state_dir: &Path, (uid, gid): (u32, u32)) -> anyhow::Result<()> {
    for entry in fs::read_dir(state_dir)? {
        let path = entry?.path();
        let m = fs::symlink_metadata(&path)?;
        if m.is_file() && (m.uid() != uid || m.gid() != gid) {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).with_context(|| {
                format!("giving {} to the state directory's owner", path.display())
            })?;
        }
    }
    Ok(())
}
