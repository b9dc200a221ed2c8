//! Memory and CPU of processes from `/proc` (Linux).

use std::sync::OnceLock;

/// Resident set size in KiB (`VmRSS`), 0 if unreadable.
pub fn rss_kib(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux if that fails).
fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// User plus system CPU time in seconds (`utime + stime` of `/proc/<pid>/stat`), 0 if unreadable.
pub fn cpu_s(pid: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may contain spaces: fields are counted after the closing parenthesis,
    // where field 3 (state) is index 0, so utime (14) is index 11 and stime (15) index 12.
    let rest = s.rfind(')').map(|i| &s[i + 1..]).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (tick(11) + tick(12)) as f64 / clk_tck()
}

/// Sum of [`rss_kib`] over pids.
pub fn rss_sum(pids: &[String]) -> u64 {
    pids.iter().map(|p| rss_kib(p)).sum()
}

/// Sum of [`cpu_s`] over pids.
pub fn cpu_sum(pids: &[String]) -> f64 {
    pids.iter().map(|p| cpu_s(p)).sum()
}

/// The machine's CPU time by state since boot, in ticks (first line of `/proc/stat`).
#[derive(Clone, Copy, Debug, Default)]
pub struct MachineCpu {
    busy: u64,
    idle: u64,
    iowait: u64,
    steal: u64,
}

impl MachineCpu {
    /// Reads `/proc/stat` now (zeros if unreadable).
    pub fn now() -> Self {
        let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let f: Vec<u64> = s
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let at = |i: usize| f.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        MachineCpu {
            busy: at(0) + at(1) + at(2) + at(5) + at(6),
            idle: at(3),
            iowait: at(4),
            steal: at(7),
        }
    }

    /// Shares of the time since `earlier`, in percent: (busy, idle, iowait, steal). Steal is
    /// time the hypervisor gave this machine's CPUs to other guests.
    pub fn shares_since(&self, earlier: &MachineCpu) -> (f64, f64, f64, f64) {
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64;
        let (busy, idle, iowait, steal) = (
            d(self.busy, earlier.busy),
            d(self.idle, earlier.idle),
            d(self.iowait, earlier.iowait),
            d(self.steal, earlier.steal),
        );
        let total = (busy + idle + iowait + steal).max(1.0);
        let pct = |v: f64| 100.0 * v / total;
        (pct(busy), pct(idle), pct(iowait), pct(steal))
    }
}
