//! What the benchmark measures with: thread and process CPU from `/proc`, RSS, medians
//! and percentiles, the printed table, and CPU pinning with `taskset`.

use super::*;

/// Total user+system CPU of this process's threads whose name starts with `prefix`.
pub(super) fn threads_cpu(prefix: &str) -> Duration {
    let mut ticks = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            if !stat[open + 1..close].starts_with(prefix) {
                continue;
            }
            ticks += stat_ticks(&stat);
        }
    }
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// User+system clock ticks of one `/proc/.../stat` line (0 if it cannot be read).
fn stat_ticks(stat: &str) -> u64 {
    let Some(rest) = stat.rfind(')').and_then(|close| stat.get(close + 2..)) else {
        return 0;
    };
    // Fields after the name: state is field 3; utime and stime are 14 and 15.
    let rest: Vec<&str> = rest.split(' ').collect();
    let utime: u64 = rest.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = rest.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    utime + stime
}

/// CPU of a whole process (`/proc/PID/stat`).
pub(super) fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(stat_ticks(&stat) * 10)
}

pub(super) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub(super) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// CPU time of the calling thread (`/proc/thread-self/stat`).
pub(super) fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    Duration::from_millis(stat_ticks(&stat) * 10)
}

pub(super) struct Table {
    pub(super) rows: Vec<(String, f64, String)>,
}

impl Table {
    pub(super) fn add(&mut self, name: &str, value: f64, note: impl Into<String>) {
        println!("  {name:<22} {value:>10.2}   {}", note.into());
        self.rows.push((name.into(), value, String::new()));
    }
    pub(super) fn get(&self, name: &str) -> f64 {
        self.rows
            .iter()
            .find(|r| r.0 == name)
            .map_or(f64::NAN, |r| r.1)
    }
}

/// Whether processes and threads are pinned: the gateway (in-process runtime, the
/// daemon, sshd, openssl) to CPU 0, clients and peers to CPU 1.
pub(super) fn pinning() -> bool {
    static PIN: OnceLock<bool> = OnceLock::new();
    *PIN.get_or_init(|| {
        std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
            && std::env::var("LATCHKEY_BENCH_PIN").map_or(true, |v| v != "0")
            && Command::new("taskset").arg("-V").output().is_ok()
    })
}

/// `program` run under `taskset -c cpu` when pinning.
pub(super) fn pin_cmd(program: &str, cpu: usize) -> Command {
    if pinning() {
        let mut c = Command::new("taskset");
        c.args(["-c", &cpu.to_string(), program]);
        c
    } else {
        Command::new(program)
    }
}

/// Pins the calling thread to `cpu`.
pub(super) fn pin_self(cpu: usize) {
    if !pinning() {
        return;
    }
    if let Ok(link) = std::fs::read_link("/proc/thread-self")
        && let Some(tid) = link.file_name()
    {
        let _ = Command::new("taskset")
            .args(["-p", "-c", &cpu.to_string()])
            .arg(tid)
            .stdout(Stdio::null())
            .status();
    }
}

/// Pins this process's threads whose name starts with `prefix` to `cpu` (threads they
/// start later inherit it).
pub(super) fn pin_threads(prefix: &str, cpu: usize) {
    if !pinning() {
        return;
    }
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.starts_with(prefix) {
            let _ = Command::new("taskset")
                .args(["-p", "-c", &cpu.to_string()])
                .arg(task.file_name())
                .stdout(Stdio::null())
                .status();
        }
    }
}
