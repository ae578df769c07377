//! The quarantine's tallies on disk (schema step 4): one row per name or destination a
//! camera tried, plus its "other" rows; the rows are exactly the bounded in-memory
//! [`Counters`], so the table is bounded by the same caps whatever a camera sends.

use std::net::IpAddr;

use rusqlite::{TransactionBehavior, params};

use super::{Store, StoreError, from_ts, ts};
use crate::quarantine::counters::{CameraTally, Counters, Dest, Proto, Tally};

/// The source column of the cameras past [`crate::quarantine::counters::MAX_SOURCES`].
const OTHER_SOURCE: &str = "other";

fn dest_text(d: &Dest) -> String {
    format!("{} {} {}", d.proto.as_str(), d.addr, d.port)
}

fn parse_dest(s: &str) -> Option<Dest> {
    let mut it = s.split(' ');
    let proto = Proto::parse(it.next()?)?;
    let addr = it.next()?.parse().ok()?;
    let port = it.next()?.parse().ok()?;
    Some(Dest { proto, addr, port })
}

fn rows(cam: &CameraTally) -> Vec<(&'static str, String, Tally)> {
    let mut out: Vec<_> = cam
        .names
        .iter()
        .map(|(n, t)| ("name", n.clone(), *t))
        .chain(cam.dests.iter().map(|(d, t)| ("dest", dest_text(d), *t)))
        .collect();
    for (kind, t) in [
        ("other-names", cam.other_names),
        ("other-dests", cam.other_dests),
    ] {
        if t.count > 0 {
            out.push((kind, String::new(), t));
        }
    }
    out
}

impl Store {
    /// Replaces the stored tallies with `counters`, in one transaction.
    pub fn save_quarantine(&self, counters: &Counters) -> Result<(), StoreError> {
        self.with("saving the quarantine report", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM quarantine_seen", [])?;
            {
                let mut st = tx.prepare(
                    "INSERT INTO quarantine_seen (source, kind, what, count, first_at, last_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                let sources = counters
                    .cameras
                    .iter()
                    .map(|(ip, cam)| (ip.to_string(), cam))
                    .chain(std::iter::once((OTHER_SOURCE.to_string(), &counters.other)));
                for (source, cam) in sources {
                    for (kind, what, t) in rows(cam) {
                        st.execute(params![
                            source,
                            kind,
                            what,
                            ts(t.count),
                            ts(t.first),
                            ts(t.last)
                        ])?;
                    }
                }
            }
            tx.commit()
        })
    }

    /// The stored tallies (rows that no longer parse are skipped).
    pub fn load_quarantine(&self) -> Result<Counters, StoreError> {
        type Row = (String, String, String, i64, i64, i64);
        let all: Vec<Row> = self.with("reading the quarantine report", |c| {
            let mut st = c.prepare(
                "SELECT source, kind, what, count, first_at, last_at FROM quarantine_seen",
            )?;
            st.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect()
        })?;
        let mut out = Counters::default();
        for (source, kind, what, count, first, last) in all {
            let t = Tally {
                count: from_ts(count),
                first: from_ts(first),
                last: from_ts(last),
            };
            let cam = if source == OTHER_SOURCE {
                &mut out.other
            } else if let Ok(ip) = source.parse::<IpAddr>() {
                out.restore(ip)
            } else {
                continue;
            };
            match kind.as_str() {
                "name" => {
                    cam.name(&what, 0, 0);
                    cam.names.entry(what).or_default().merge(&t);
                }
                "dest" => {
                    if let Some(d) = parse_dest(&what) {
                        cam.dests.entry(d).or_default().merge(&t);
                    }
                }
                "other-names" => cam.other_names.merge(&t),
                "other-dests" => cam.other_dests.merge(&t),
                _ => {}
            }
        }
        out.dirty = false;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tallies_round_trip_and_stay_bounded_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut c = Counters::default();
        let cam: IpAddr = "10.78.0.2".parse().unwrap();
        for i in 0..10_000u32 {
            c.camera(cam).name(&format!("n{i}.example"), 1, 7);
            c.camera(cam).dest(
                Dest {
                    proto: Proto::Tcp,
                    addr: IpAddr::from(i.to_be_bytes()),
                    port: 443,
                },
                1,
                8,
            );
        }
        store.save_quarantine(&c).unwrap();
        store.save_quarantine(&c).unwrap();
        let back = store.load_quarantine().unwrap();
        assert_eq!(back.cameras, c.cameras);
        let rows: i64 = store
            .with("t", |c| {
                c.query_row("SELECT COUNT(*) FROM quarantine_seen", [], |r| r.get(0))
            })
            .unwrap();
        let cap = crate::quarantine::counters::MAX_NAMES + crate::quarantine::counters::MAX_DESTS;
        assert_eq!(rows, i64::try_from(cap + 2).unwrap());
    }
}
