//! The daemons' log files that the API reads back (DescribeVpnSslServerLogs from OpenVPN,
//! DescribeVpnConnectionLogs and ListIpsecServerLogs from charon).
//!
//! Both daemons open their log for appending, so a file can be copied aside and truncated under
//! them: the previous part is `<file>.1`, as logrotate names it.

use std::path::{Path, PathBuf};

/// A log is copied aside and truncated past this size.
pub const ROTATE_BYTES: u64 = 4 << 20;

/// The previous part of a log file.
fn previous(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".1");
    PathBuf::from(p)
}

/// Copies the file to `<file>.1` and truncates it, once it is past [`ROTATE_BYTES`].
pub fn rotate(path: &Path) {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > ROTATE_BYTES) && std::fs::copy(path, previous(path)).is_ok() {
        let _ = std::fs::OpenOptions::new().write(true).truncate(true).open(path);
    }
}

/// The lines `keep` accepts, oldest first: the previous part, then the current file.
pub fn lines(path: &Path, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    for p in [previous(path), path.to_path_buf()] {
        if let Ok(bytes) = std::fs::read(&p) {
            out.extend(String::from_utf8_lossy(&bytes).lines().filter(|l| keep(l)).map(str::to_string));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_log_reads_oldest_first_and_filtered() {
        let dir = std::env::temp_dir().join(format!("vpngw-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("charon.log");
        let big = "x".repeat(ROTATE_BYTES as usize);
        std::fs::write(&log, format!("old vco-1\n{big}\n")).unwrap();
        rotate(&log);
        assert_eq!(std::fs::metadata(&log).unwrap().len(), 0, "truncated");
        assert!(dir.join("charon.log.1").exists(), "copied aside as logrotate names it");
        std::fs::write(&log, "new vco-1\nnew vco-2\n").unwrap();
        assert_eq!(lines(&log, |l| l.contains("vco-1")), ["old vco-1", "new vco-1"]);
        rotate(&log);
        assert_eq!(lines(&log, |l| l.contains("vco-2")), ["new vco-2"], "a small log stays");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
