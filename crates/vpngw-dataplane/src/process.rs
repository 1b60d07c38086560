//! The daemons vpngw runs (lab charons, OpenVPN servers) and the tools it calls: one place that
//! starts, finds and stops processes.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Runs `cmd` with these arguments; its standard output, or an error with its standard error.
pub async fn run(cmd: &str, args: &[&str]) -> Result<String> {
    let out = tokio::process::Command::new(cmd).args(args).output().await.with_context(|| format!("run {cmd}"))?;
    if !out.status.success() {
        bail!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether a process is alive (and not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()), Some("Z") | Some("X")),
        Err(_) => false,
    }
}

/// The pid a pid file names.
pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Starts a daemon that outlives vpngw: in its own process group (a signal to vpngw's group
/// does not reach it), output appended to `out`, its pid written to `pid_file`. The child is
/// reaped by tokio's orphan reaper once dropped; liveness is read from /proc ([`alive`]).
pub fn spawn_detached(mut cmd: tokio::process::Command, out: &Path, pid_file: &Path) -> Result<u32> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(out).with_context(|| format!("open {}", out.display()))?;
    let child = cmd.stdin(std::process::Stdio::null()).stdout(log.try_clone()?).stderr(log).process_group(0).spawn()?;
    let pid = child.id().context("the process has no pid")?;
    std::fs::write(pid_file, pid.to_string())?;
    Ok(pid)
}

/// Stops the process a pid file names (TERM, then KILL after 2 s) and removes the file.
pub async fn kill_pid_file(path: &Path) {
    if let Some(pid) = read_pid(path).filter(|p| alive(*p)) {
        let _ = run("kill", &["-TERM", &pid.to_string()]).await;
        for _ in 0..40 {
            if !alive(pid) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if alive(pid) {
            let _ = run("kill", &["-KILL", &pid.to_string()]).await;
        }
    }
    let _ = std::fs::remove_file(path);
}
