//! The addresses this machine's network interfaces hold, for the two places that must know
//! where a server bound to every interface (`0.0.0.0`, `[::]`) can be reached: the URLs
//! printed at start-up and the Host check's list of the server's own names.
//!
//! Read with `getifaddrs(3)` through the `libc` crate the server already links: one call
//! gives every interface's IPv4 and IPv6 addresses with its name, on Linux, the BSDs and
//! macOS alike. The alternatives were worse: `/proc/net/if_inet6` has IPv6 only (IPv4 needs
//! the `SIOCGIFCONF` ioctl on top), and the "connect a UDP socket and read its local
//! address" trick finds only the address of the default route. The list is read at start-up;
//! an address an interface gains later (a new DHCP lease) is not among the server's names
//! until it restarts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One address of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub ip: IpAddr,
}

/// Every IPv4 and IPv6 address of every interface that is up, loopback included; empty if
/// the system will not say.
pub fn list() -> Vec<Interface> {
    let mut found = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list it allocated, which we only read, through
    // pointers it set, and free once with freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return found;
        }
        let mut cursor = head;
        while let Some(entry) = cursor.as_ref() {
            cursor = entry.ifa_next;
            let up = entry.ifa_flags & (libc::IFF_UP as u32) != 0;
            if !up || entry.ifa_addr.is_null() || entry.ifa_name.is_null() {
                continue;
            }
            let ip = match i32::from((*entry.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(entry.ifa_addr as *const libc::sockaddr_in);
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
                }
                libc::AF_INET6 => {
                    let sin6 = &*(entry.ifa_addr as *const libc::sockaddr_in6);
                    IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
                }
                _ => continue,
            };
            let name = std::ffi::CStr::from_ptr(entry.ifa_name)
                .to_string_lossy()
                .into_owned();
            found.push(Interface { name, ip });
        }
        libc::freeifaddrs(head);
    }
    found
}

/// The addresses a server bound to `addr` answers on: `addr`'s own when it names one, and
/// when it is unspecified every interface address of its family (for `[::]`, the IPv4 ones
/// too: Linux listens on both by default, and an address of this machine taken as a `Host`
/// opens nothing to a foreign page, whose own name is what DNS rebinding sends).
pub fn serving(addr: SocketAddr, interfaces: &[Interface]) -> Vec<IpAddr> {
    let ip = addr.ip();
    if !ip.is_unspecified() {
        return vec![ip];
    }
    let mut ips: Vec<IpAddr> = interfaces
        .iter()
        .map(|i| i.ip)
        .filter(|i| ip.is_ipv6() || i.is_ipv4())
        .collect();
    // The loopback one, even if the interface list could not be read.
    ips.push(if ip.is_ipv4() {
        Ipv4Addr::LOCALHOST.into()
    } else {
        Ipv6Addr::LOCALHOST.into()
    });
    ips.sort();
    ips.dedup();
    ips
}

/// The address to open on this machine: `addr` itself, or for an unspecified address the
/// loopback one of its family (`0.0.0.0` is no address a browser should be sent to).
pub fn local(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(v6) if v6.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// The lines printed after the first one ([`crate::spawn::banner`]): where else the server
/// can be reached. Each non-loopback address it serves (with its interface's name), skipping
/// IPv6 link-local ones, which a browser cannot use (a URL cannot carry their zone), then
/// every `--public-url`.
pub fn more_urls(addr: SocketAddr, interfaces: &[Interface], public: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
    for ip in serving(addr, interfaces) {
        let link_local = matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
        if ip.is_loopback() || link_local || ip == local(addr).ip() {
            continue;
        }
        let name = interfaces
            .iter()
            .find(|i| i.ip == ip)
            .map_or(String::new(), |i| format!(" ({})", i.name));
        lines.push(format!(
            "  on the network: http://{}/{name}",
            SocketAddr::new(ip, addr.port())
        ));
    }
    for url in public {
        lines.push(format!("  public URL:     {url}"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ifs() -> Vec<Interface> {
        [
            ("lo", "127.0.0.1"),
            ("eth0", "192.0.2.2"),
            ("lo", "::1"),
            ("eth0", "fe80::1"),
            ("eth0", "2001:db8::2"),
        ]
        .iter()
        .map(|(n, ip)| Interface {
            name: n.to_string(),
            ip: ip.parse().unwrap(),
        })
        .collect()
    }

    #[test]
    fn an_unspecified_address_serves_every_interface_of_its_family() {
        let v4: Vec<String> = serving("0.0.0.0:3000".parse().unwrap(), &ifs())
            .iter()
            .map(|i| i.to_string())
            .collect();
        assert_eq!(v4, ["127.0.0.1", "192.0.2.2"]);
        assert_eq!(serving("[::]:3000".parse().unwrap(), &ifs()).len(), 5);
        assert_eq!(serving("192.0.2.2:3000".parse().unwrap(), &ifs()).len(), 1);
        assert_eq!(
            serving("0.0.0.0:1".parse().unwrap(), &[]),
            [IpAddr::from([127, 0, 0, 1])]
        );
    }

    #[test]
    fn the_printed_urls_name_the_network_addresses_and_public_urls() {
        let lines = more_urls(
            "[::]:3000".parse().unwrap(),
            &ifs(),
            &["https://class.example/".into()],
        );
        assert_eq!(
            lines,
            [
                "  on the network: http://192.0.2.2:3000/ (eth0)",
                "  on the network: http://[2001:db8::2]:3000/ (eth0)",
                "  public URL:     https://class.example/",
            ]
        );
        assert!(more_urls("127.0.0.1:3000".parse().unwrap(), &ifs(), &[]).is_empty());
        assert_eq!(
            local("0.0.0.0:7".parse().unwrap()),
            "127.0.0.1:7".parse().unwrap()
        );
        assert_eq!(local("[::]:7".parse().unwrap()), "[::1]:7".parse().unwrap());
    }
}
