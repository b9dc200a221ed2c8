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
