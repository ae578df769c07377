//! Schema versions of the state store and the migrations between them.
//!
//! The version lives in SQLite's `PRAGMA user_version`. Version 0 is a store made before
//! versions existed (or an empty file); version 1 is the schema this project first
//! shipped (`store::SCHEMA` plus the audit log's `camera` column). Each later change is
//! one [`Step`]: its SQL and the new version are applied in one transaction, so a crash
//! leaves the old version or the new one. A store whose version is newer than
//! [`CURRENT`] is refused before anything in it is read or written.
//!
//! To change the schema, append a step (`Step { version: 2, sql: "CREATE TABLE ..." }`);
//! never edit a shipped step, and keep `store::SCHEMA` as the version 1 baseline.

use rusqlite::{Connection, TransactionBehavior};

/// One numbered schema change.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// The version the store has once this step is applied.
    pub version: u32,
    /// The SQL that makes the change.
    pub sql: &'static str,
}

/// Changes after version 1, in order; versions increase by one.
pub const STEPS: &[Step] = &[
    // 2: cameras the owner added at run time (CLI, web UI, owner phones).
    Step {
        version: 2,
        sql: "CREATE TABLE IF NOT EXISTS cameras (
            id TEXT PRIMARY KEY,
            url TEXT NOT NULL,
            username TEXT,
            password TEXT,
            onvif TEXT,
            created_at INTEGER NOT NULL
        );",
    },
    // 3: the session-hello replay guard that survives a restart, and an index for the
    // audit log's per-class retention.
    Step {
        version: 3,
        sql: "CREATE TABLE IF NOT EXISTS hello_guard (
             device TEXT PRIMARY KEY,
             last_ms INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS audit_kind_id ON audit (kind, id);",
    },
    // 4: what quarantined cameras tried (names asked, destinations dropped), bounded by
    // the caps of `quarantine::counters`.
    Step {
        version: 4,
        sql: "CREATE TABLE IF NOT EXISTS quarantine_seen (
             source TEXT NOT NULL,
             kind TEXT NOT NULL,
             what TEXT NOT NULL,
             count INTEGER NOT NULL,
             first_at INTEGER NOT NULL,
             last_at INTEGER NOT NULL,
             PRIMARY KEY (source, kind, what)
         );",
    },
];

/// The schema version this code writes and reads.
pub const CURRENT: u32 = match STEPS.last() {
    Some(s) => s.version,
    None => 1,
};

/// Why a store could not be brought to [`CURRENT`].
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Written by a newer Latchkey: this code must not guess at it.
    #[error(
        "was written by a newer Latchkey (schema version {found}; this version knows up to {known}): run that version again, or restore a backup made by this one"
    )]
    TooNew {
        /// The store's version.
        found: u32,
        /// The newest this code knows.
        known: u32,
    },
    /// SQLite failed.
    #[error("migrating to schema version {version}: {source}")]
    Sqlite {
        /// The version being reached.
        version: u32,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
}

/// The store's schema version.
pub fn version(conn: &Connection) -> Result<u32, rusqlite::Error> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Refuses a store newer than this code; returns its version.
pub fn check(conn: &Connection) -> Result<u32, SchemaError> {
    let found = version(conn).map_err(|source| SchemaError::Sqlite { version: 0, source })?;
    if found > CURRENT {
        return Err(SchemaError::TooNew {
            found,
            known: CURRENT,
        });
    }
    Ok(found)
}

/// Brings the store to [`CURRENT`]: the version 1 baseline (`baseline`, idempotent
/// `CREATE TABLE IF NOT EXISTS` statements) for a store without a version, then every
/// later step, one transaction each. Returns the version found before migrating.
pub fn migrate(conn: &mut Connection, baseline: &str) -> Result<u32, SchemaError> {
    let found = check(conn)?;
    let err = |version| move |source| SchemaError::Sqlite { version, source };
    if found < 1 {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err(1))?;
        tx.execute_batch(baseline).map_err(err(1))?;
        // Stores made before the audit log named cameras gain the column in place.
        let has_camera: bool = tx
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('audit') WHERE name = 'camera'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(err(1))?
            > 0;
        if !has_camera {
            tx.execute_batch("ALTER TABLE audit ADD COLUMN camera TEXT")
                .map_err(err(1))?;
        }
        tx.pragma_update(None, "user_version", 1).map_err(err(1))?;
        tx.commit().map_err(err(1))?;
    }
    apply(conn, STEPS)?;
    // Idempotent: a table added to the baseline with IF NOT EXISTS still appears.
    conn.execute_batch(baseline).map_err(err(CURRENT))?;
    Ok(found)
}

/// Applies each step newer than the store, in order, one transaction each.
fn apply(conn: &mut Connection, steps: &[Step]) -> Result<(), SchemaError> {
    for step in steps {
        let err = |source| SchemaError::Sqlite {
            version: step.version,
            source,
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        // Read inside the transaction: another process may have migrated meanwhile.
        if version(&tx).map_err(err)? >= step.version {
            continue;
        }
        tx.execute_batch(step.sql).map_err(err)?;
        tx.pragma_update(None, "user_version", step.version)
            .map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY, kind TEXT, detail TEXT);";

    #[test]
    fn an_empty_database_reaches_the_current_version() {
        let mut c = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut c, BASE).unwrap(), 0);
        assert_eq!(version(&c).unwrap(), CURRENT);
        // The camera column of version 1 is there.
        c.execute(
            "INSERT INTO audit (detail, camera) VALUES ('x', 'front')",
            [],
        )
        .unwrap();
        // Opening again changes nothing.
        assert_eq!(migrate(&mut c, BASE).unwrap(), CURRENT);
    }

    #[test]
    fn later_steps_apply_in_order_once_and_a_failing_step_changes_nothing() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c, BASE).unwrap();
        let steps = [
            Step {
                version: CURRENT + 1,
                sql: "CREATE TABLE later_widgets (id TEXT PRIMARY KEY)",
            },
            Step {
                version: CURRENT + 2,
                sql: "ALTER TABLE later_widgets ADD COLUMN url TEXT",
            },
        ];
        apply(&mut c, &steps).unwrap();
        apply(&mut c, &steps).unwrap();
        assert_eq!(version(&c).unwrap(), CURRENT + 2);
        c.execute("INSERT INTO later_widgets (id, url) VALUES ('a', 'b')", [])
            .unwrap();
        let bad = [Step {
            version: CURRENT + 3,
            sql: "CREATE TABLE more (x); CREATE TABLE later_widgets (id)",
        }];
        assert!(apply(&mut c, &bad).is_err());
        assert_eq!(version(&c).unwrap(), CURRENT + 2);
        let more: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'more'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(more, 0, "the failed step was rolled back whole");
    }

    #[test]
    fn a_newer_database_is_refused_untouched() {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "user_version", CURRENT + 1).unwrap();
        let e = migrate(&mut c, BASE).unwrap_err();
        assert!(
            matches!(e, SchemaError::TooNew { found, known } if found == CURRENT + 1 && known == CURRENT)
        );
        assert!(e.to_string().contains("newer Latchkey"), "{e}");
        let tables: i64 = c
            .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 0);
    }
}
