//! The kernel's view of our UDP sockets: the per-socket drop counter of `/proc/net/udp` and
//! `/proc/net/udp6` (datagrams the kernel discarded because the receive buffer was full),
//! found by the socket's inode, and the system-wide `RcvbufErrors` of `/proc/net/snmp`.
//! Elsewhere than Linux these read nothing (`None`).

use std::path::Path;

/// The inode of a socket (`/proc/self/fd/N` links to `socket:[INODE]`).
pub fn socket_inode(fd: i32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    let s = link.to_str()?;
    s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// The `drops` column of the socket with `inode` in `/proc/net/udp` or `/proc/net/udp6`.
pub fn socket_drops(inode: u64) -> Option<u64> {
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .find_map(|p| drops_in(Path::new(p), inode))
}

fn drops_in(path: &Path, inode: u64) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_drops(&text, inode)
}

/// Parses the table of `/proc/net/udp`: `sl local rem st tx:rx tr:tm retrnsmt uid timeout
/// inode ref pointer drops`.
pub fn parse_drops(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 13 && f[9].parse::<u64>().ok() == Some(inode) {
            f[12].parse().ok()
        } else {
            None
        }
    })
}

/// `Udp: RcvbufErrors` of `/proc/net/snmp` (all sockets of the host's network namespace).
pub fn rcvbuf_errors() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
    parse_snmp(&text, "RcvbufErrors")
}

/// One counter of the `Udp:` lines of `/proc/net/snmp` (a header line, then a value line).
pub fn parse_snmp(text: &str, name: &str) -> Option<u64> {
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let head = udp.next()?;
    let vals = udp.next()?;
    let i = head.split_whitespace().position(|h| h == name)?;
    vals.split_whitespace().nth(i)?.parse().ok()
}

/// Resident memory of this process, bytes (`/proc/self/statm`).
pub fn resident_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drops_column_is_found_by_inode() {
        let t = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
                 1234: 0100007F:0807 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 5551 2 0000000000000000 0\n\
                 1235: 0100007F:1287 00000000:0000 07 00000000:00034000 00:00000000 00000000     0        0 5552 2 0000000000000000 417\n";
        assert_eq!(parse_drops(t, 5552), Some(417));
        assert_eq!(parse_drops(t, 5551), Some(0));
        assert_eq!(parse_drops(t, 9), None);
    }

    #[test]
    fn snmp_counters_are_read_by_name() {
        let t = "Ip: Forwarding\nIp: 1\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\nUdp: 10 2 7 5 7 0\n";
        assert_eq!(parse_snmp(t, "RcvbufErrors"), Some(7));
        assert_eq!(parse_snmp(t, "NoPorts"), Some(2));
        assert_eq!(parse_snmp(t, "Nope"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn our_own_socket_is_in_the_table_with_no_drops() {
        use std::os::fd::AsRawFd;
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let inode = socket_inode(s.as_raw_fd()).expect("a socket inode");
        assert_eq!(socket_drops(inode), Some(0));
        assert!(resident_bytes().unwrap() > 0);
    }
}
