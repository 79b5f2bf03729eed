//! What `/proc` says about a process the load tester does not talk to: the Redis server's CPU
//! time (`--redis-pid`) and the nginx worker's CPU, memory and sockets (`--peer nchan`).
//! pushpoll's own figures come from `/api/stats` instead; the server reads its own process
//! with `getrusage` (`pushpoll::stats::Process`), which is why this reader stays here.

use anyhow::{Context as _, bail};

/// The CPU time (user + system, in seconds) process `pid` has used, from `/proc/PID/stat`
/// (its 14th and 15th fields, in clock ticks).
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = parse_stat_ticks(&stat).with_context(|| format!("{path}: unexpected format"))?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if per_second <= 0 {
        bail!("sysconf(_SC_CLK_TCK) answered {per_second}");
    }
    Ok(ticks as f64 / per_second as f64)
}

/// utime + stime from a `/proc/PID/stat` line. The command name (field 2) is in parentheses
/// and may hold spaces or parentheses itself, so the fields are counted after the last `)`.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After `)`: field 3 (state) is index 0, so utime (14) is index 11 and stime (15) 12.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Process `pid`'s resident memory in bytes, from `/proc/PID/statm` (its 2nd field, in pages).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/statm");
    let statm = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .with_context(|| format!("{path}: unexpected format"))?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    Ok(pages * page)
}

/// The targets of process `pid`'s open file descriptors (`socket:[INODE]` for a socket);
/// empty if they cannot be read (the process has gone, or is not ours to read).
pub fn fd_targets(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect()
}

/// How many sockets process `pid` holds.
pub fn socket_count(pid: u32) -> usize {
    fd_targets(pid)
        .iter()
        .filter(|t| t.starts_with("socket:"))
        .count()
}

/// Every process on this machine whose command line starts with `prefix`.
pub fn pids_named(prefix: &[u8]) -> anyhow::Result<Vec<u32>> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(prefix)) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// Inodes of the sockets listening on `port` (IPv4 and IPv6), from `/proc/net/tcp{,6}`.
pub fn listening_inodes(port: u16) -> Vec<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT, st 0A is LISTEN, the inode is the 10th field.
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let listening_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if *state == "0A" && listening_port == Some(port) {
                inodes.push(inode.to_string());
            }
        }
    }
    inodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_the_command_name_whatever_it_holds() {
        let line = "4242 (redis (x) 1) S 1 4242 4242 0 -1 4194560 93 0 0 0 17 5 0 0 20 0 5 0 \
                    100 1000 200 18446744073709551615";
        assert_eq!(parse_stat_ticks(line), Some(22));
        assert_eq!(parse_stat_ticks("4242 (short) S 1 2"), None);
        assert_eq!(parse_stat_ticks("no parenthesis"), None);
        // This process's own CPU time is readable and finite.
        let own = cpu_seconds(std::process::id()).unwrap();
        assert!(own.is_finite() && own >= 0.0);
        assert!(cpu_seconds(u32::MAX).is_err());
    }

    #[test]
    fn this_process_has_memory_and_a_gone_one_has_none() {
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
        assert!(rss_bytes(u32::MAX).is_err());
        assert_eq!(socket_count(u32::MAX), 0);
    }
}
