//! Who a request is from, behind a reverse proxy: `--trust-proxy CIDR` names the proxies,
//! and only a request whose TCP peer is inside one of those ranges has its client address
//! and scheme taken from `X-Forwarded-For` / `X-Forwarded-Proto`, or, when it carries no
//! `X-Forwarded-For`, from RFC 7239 `Forwarded` (`for=`, `proto=`). Any other peer's
//! forwarded headers are ignored: a client cannot pick the address its budgets are charged to.
//!
//! The chain is read from the right, as each proxy appends the address it received the
//! request from: the client is the right-most address that is not itself a trusted proxy
//! (RFC 7239 §5.2; the left-most one is whatever the client wrote). At most [`MAX_HOPS`]
//! hops are read. When the walk ends without an address it can use (an entry that does not
//! parse, `unknown`, an obfuscated `_name`, or past the hop cap), the last trusted hop is the
//! client: the request is charged to a proxy, never to an address a client chose.
//!
//! Which header: `X-Forwarded-For` when present (nginx sets it with
//! `$proxy_add_x_forwarded_for`, and passes a client's own `Forwarded` through untouched, so
//! preferring `Forwarded` would let a client pick its address); `Forwarded` otherwise. A
//! proxy that sets only `Forwarded` must therefore remove a client's `X-Forwarded-For`.
//!
//! [`resolve`] is the one place this is decided; `crate::http::ClientAddr` carries its answer
//! to the handlers (budgets), the logs and the wire view.

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// Forwarded hops read at most, from the right; past them, the last one read is the client.
pub const MAX_HOPS: usize = 16;

/// An address range, `ADDR/PREFIX`: the address must have no bits set past the prefix
/// (`10.0.0.0/8`, not `10.1.2.3/8`), so a typo is refused rather than widened. A bare
/// address is a range of one (`/32`, `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why an address range was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadCidr {
    #[error("{0:?} is not an address range (try 10.0.0.0/8 or ::1/128)")]
    NotAnAddress(String),
    #[error("{0:?}: the prefix length must be 0 to {1}")]
    Prefix(String, u8),
    #[error("{input:?} has bits set past its /{prefix} prefix (did you mean {network}/{prefix}?)")]
    PastPrefix {
        input: String,
        prefix: u8,
        network: IpAddr,
    },
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or `ADDR` strictly (for clap's `value_parser`).
    pub fn parse(s: &str) -> Result<Cidr, BadCidr> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| BadCidr::NotAnAddress(s.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // Digits only: `u8::from_str` would take `+8`.
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| BadCidr::Prefix(s.to_string(), max))?,
            Some(_) => return Err(BadCidr::Prefix(s.to_string(), max)),
        };
        let cidr = Cidr { addr, prefix };
        if cidr.network() != bits(addr) {
            return Err(BadCidr::PastPrefix {
                input: s.to_string(),
                prefix,
                network: from_bits(cidr.network(), addr.is_ipv4()),
            });
        }
        Ok(cidr)
    }

    fn mask(&self) -> u128 {
        let width = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == 0 {
            0
        } else {
            (u128::MAX << (width - u32::from(self.prefix))) & width_mask(width)
        }
    }

    fn network(&self) -> u128 {
        bits(self.addr) & self.mask()
    }

    /// Whether `ip` is inside the range. An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`, a
    /// v4 client of a `[::]` listener) is compared as the IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && bits(ip) & self.mask() == self.network()
    }
}

fn width_mask(width: u32) -> u128 {
    if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_bits(bits: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::from((bits as u32).to_be_bytes())
    } else {
        IpAddr::from(bits.to_be_bytes())
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = BadCidr;
    fn from_str(s: &str) -> Result<Cidr, BadCidr> {
        Cidr::parse(s)
    }
}

/// The scheme the client used to reach the first server it talked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn parse(s: &str) -> Option<Scheme> {
        let s = s.trim().trim_matches('"');
        if s.eq_ignore_ascii_case("http") {
            Some(Scheme::Http)
        } else if s.eq_ignore_ascii_case("https") {
            Some(Scheme::Https)
        } else {
            None
        }
    }
}

/// The client of a request, as [`resolve`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The client's address: the TCP peer's, or the one a trusted proxy forwarded.
    pub ip: IpAddr,
    /// `https` when the server itself or a trusted proxy in front of it terminated TLS.
    pub scheme: Scheme,
    /// The TCP peer (a proxy, when `ip` was forwarded).
    pub peer: SocketAddr,
}

impl Client {
    /// Whether the address is another than the TCP peer's: a proxy forwarded it.
    pub fn forwarded(&self) -> bool {
        self.ip != self.peer.ip().to_canonical()
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.forwarded() {
            write!(
                f,
                "{} via {} ({})",
                self.ip,
                self.peer,
                self.scheme.as_str()
            )
        } else {
            write!(f, "{} ({})", self.peer, self.scheme.as_str())
        }
    }
}

/// The client of a request from `peer` that arrived over `scheme`, given the trusted proxy
/// ranges: see the module documentation for the rule.
pub fn resolve(peer: SocketAddr, scheme: Scheme, headers: &HeaderMap, trusted: &[Cidr]) -> Client {
    let direct = Client {
        ip: peer.ip().to_canonical(),
        scheme,
        peer,
    };
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(direct.ip) {
        return direct;
    }
    if headers.contains_key("x-forwarded-for") {
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .rev()
            .flat_map(|v| v.to_str().unwrap_or("?").rsplit(','))
            .map(parse_node);
        let ip = walk(direct.ip, hops, &is_trusted);
        // The proto the nearest proxy wrote: the right-most value.
        let scheme = headers
            .get_all("x-forwarded-proto")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(Scheme::parse)
            .unwrap_or(scheme);
        return Client { ip, scheme, peer };
    }
    if headers.contains_key("forwarded") {
        let elements = forwarded_elements(headers);
        let ip = walk(
            direct.ip,
            elements.iter().rev().map(|e| e.node),
            &is_trusted,
        );
        let scheme = elements.back().and_then(|e| e.proto).unwrap_or(scheme);
        return Client { ip, scheme, peer };
    }
    direct
}

/// Walks hops from the right, starting at the (trusted) peer: returns the first address that
/// is not trusted, or the last trusted one when a hop is unusable or [`MAX_HOPS`] are read.
fn walk(
    peer: IpAddr,
    hops: impl Iterator<Item = Option<IpAddr>>,
    is_trusted: &impl Fn(IpAddr) -> bool,
) -> IpAddr {
    let mut last = peer;
    for hop in hops.take(MAX_HOPS) {
        let Some(ip) = hop else {
            return last;
        };
        if !is_trusted(ip) {
            return ip;
        }
        last = ip;
    }
    last
}

/// One node of a forwarded chain: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`, quoted or not; `None` for anything else
/// (`unknown`, an obfuscated `_name`, garbage).
fn parse_node(raw: &str) -> Option<IpAddr> {
    let s = raw.trim().trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let port_ok = after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| p.parse::<u16>().is_ok());
        return port_ok
            .then(|| v6.parse::<std::net::Ipv6Addr>().ok())
            .flatten()
            .map(|ip| IpAddr::V6(ip).to_canonical());
    }
    let (v4, port) = s.split_once(':')?;
    port.parse::<u16>().ok()?;
    v4.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// What one `Forwarded` element says that is used here.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Element {
    node: Option<IpAddr>,
    proto: Option<Scheme>,
}

/// The last [`MAX_HOPS`] elements of every `Forwarded` header, in order. Values may be
/// quoted strings holding `,` `;` `=`, so the text is scanned once, left to right, with the
/// quoting tracked; only the last elements are kept.
fn forwarded_elements(headers: &HeaderMap) -> VecDeque<Element> {
    let mut kept = VecDeque::with_capacity(MAX_HOPS);
    for value in headers.get_all("forwarded") {
        let text = value.to_str().unwrap_or("for=?");
        let mut element = Element {
            node: None,
            proto: None,
        };
        let mut start = 0;
        let mut quoted = false;
        let mut escaped = false;
        let bytes = text.as_bytes();
        for i in 0..=bytes.len() {
            let b = bytes.get(i).copied();
            if quoted {
                match b {
                    _ if escaped => escaped = false,
                    Some(b'\\') => escaped = true,
                    Some(b'"') => quoted = false,
                    _ => {}
                }
                if b.is_some() {
                    continue;
                }
            }
            match b {
                Some(b'"') => quoted = true,
                Some(b';') | Some(b',') | None => {
                    pair(&text[start..i], &mut element);
                    start = i + 1;
                    if b != Some(b';') {
                        if kept.len() == MAX_HOPS {
                            kept.pop_front();
                        }
                        kept.push_back(element);
                        element = Element {
                            node: None,
                            proto: None,
                        };
                    }
                }
                _ => {}
            }
        }
    }
    kept
}

/// Applies one `name=value` pair of a `Forwarded` element.
fn pair(text: &str, element: &mut Element) {
    let Some((name, value)) = text.split_once('=') else {
        return;
    };
    let name = name.trim();
    if name.eq_ignore_ascii_case("for") {
        element.node = parse_node(value);
    } else if name.eq_ignore_ascii_case("proto") {
        element.proto = Scheme::parse(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| Cidr::parse(c).unwrap()).collect()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        h
    }

    fn client(peer: &str, pairs: &[(&str, &str)], trusted: &[&str]) -> (String, &'static str) {
        let c = resolve(
            peer.parse().unwrap(),
            Scheme::Http,
            &headers(pairs),
            &cidrs(trusted),
        );
        (c.ip.to_string(), c.scheme.as_str())
    }

    #[test]
    fn cidrs_parse_strictly() {
        for ok in [
            "127.0.0.0/8",
            "10.0.0.1",
            "0.0.0.0/0",
            "::1/128",
            "fd00::/8",
            "::/0",
            "192.0.2.2/32",
        ] {
            assert!(Cidr::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "10.1.2.3/8",
            "127.0.0.0/33",
            "::1/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/08x",
            "10.0.0/8",
            "localhost",
            "",
            "/8",
            "10.0.0.0/8/8",
            "fe80::1%eth0/64",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.255.1.2".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(
            net.contains("::ffff:10.0.0.1".parse().unwrap()),
            "v4-mapped"
        );
        assert!(!net.contains("::1".parse().unwrap()));
        assert!(
            Cidr::parse("::/0")
                .unwrap()
                .contains("2001:db8::1".parse().unwrap())
        );
        assert!(
            !Cidr::parse("::/0")
                .unwrap()
                .contains("10.0.0.1".parse().unwrap())
        );
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let forged = [
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ];
        assert_eq!(
            client("192.0.2.7:5000", &forged, &[]),
            ("192.0.2.7".into(), "http")
        );
        assert_eq!(
            client("192.0.2.7:5000", &forged, &["127.0.0.0/8"]),
            ("192.0.2.7".into(), "http")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() {
        let trusted = ["127.0.0.0/8", "10.0.0.0/8"];
        let peer = "127.0.0.1:5000";
        // The client wrote the left-most entry itself; nginx appended the real one.
        let xff = [
            ("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.2"),
            ("x-forwarded-proto", "https"),
        ];
        assert_eq!(
            client(peer, &xff, &trusted),
            ("203.0.113.9".into(), "https")
        );
        // Repeated headers are one list, in order.
        let split = [
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(client(peer, &split, &trusted).0, "203.0.113.9");
        // Garbage, `unknown` or all-trusted: the last trusted hop.
        assert_eq!(
            client(peer, &[("x-forwarded-for", "junk, 10.0.0.2")], &trusted).0,
            "10.0.0.2"
        );
        assert_eq!(
            client(peer, &[("x-forwarded-for", "unknown")], &trusted).0,
            "127.0.0.1"
        );
        assert_eq!(
            client(peer, &[("x-forwarded-for", "10.0.0.3")], &trusted).0,
            "10.0.0.3"
        );
        assert_eq!(
            client(peer, &[("x-forwarded-for", "")], &trusted).0,
            "127.0.0.1"
        );
        // Ports and brackets as some proxies write them.
        assert_eq!(
            client(peer, &[("x-forwarded-for", "[2001:db8::1]:443")], &trusted).0,
            "2001:db8::1"
        );
        assert_eq!(
            client(peer, &[("x-forwarded-for", "203.0.113.9:1234")], &trusted).0,
            "203.0.113.9"
        );
        // A proto other than http/https is ignored.
        assert_eq!(
            client(
                peer,
                &[
                    ("x-forwarded-for", "203.0.113.9"),
                    ("x-forwarded-proto", "gopher")
                ],
                &trusted
            )
            .1,
            "http"
        );
        // More hops than the cap: the walk stops on a trusted hop.
        let long = format!("203.0.113.9{}", ", 10.0.0.1".repeat(MAX_HOPS + 5));
        assert_eq!(
            client(peer, &[("x-forwarded-for", &long)], &trusted).0,
            "10.0.0.1"
        );
    }

    #[test]
    fn rfc_7239_forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let trusted = ["127.0.0.0/8"];
        let peer = "127.0.0.1:5000";
        let fwd = [(
            "forwarded",
            r#"for=1.2.3.4, for="[2001:db8:cafe::17]:4711";proto=https;by=_proxy"#,
        )];
        assert_eq!(
            client(peer, &fwd, &trusted),
            ("2001:db8:cafe::17".into(), "https")
        );
        let quoted = [(
            "forwarded",
            r#"for="_a,b;c=d";proto=http, for="192.0.2.60:80";proto=HTTPS"#,
        )];
        assert_eq!(
            client(peer, &quoted, &trusted),
            ("192.0.2.60".into(), "https")
        );
        assert_eq!(
            client(peer, &[("forwarded", "for=_hidden")], &trusted).0,
            "127.0.0.1"
        );
        assert_eq!(
            client(peer, &[("forwarded", r#"for="unterminated"#)], &trusted).0,
            "127.0.0.1"
        );
        // X-Forwarded-For wins: nginx passes a client's own `Forwarded` through.
        let both = [
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(client(peer, &both, &trusted).0, "203.0.113.9");
    }

    proptest::proptest! {
        /// Any header text: no panic; an untrusted peer is always the client; a trusted peer's
        /// client comes from the text or is the peer.
        #[test]
        fn any_forwarded_text_resolves_without_panic(text in ".{0,200}", xff in proptest::bool::ANY) {
            let mut h = HeaderMap::new();
            if let Ok(v) = text.parse() {
                h.insert(if xff { "x-forwarded-for" } else { "forwarded" }, v);
            }
            let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
            let trusted = resolve(peer, Scheme::Http, &h, &cidrs(&["127.0.0.0/8"]));
            proptest::prop_assert!(trusted.ip == peer.ip() || !text.trim().is_empty());
            let untrusted = resolve(peer, Scheme::Http, &h, &cidrs(&["10.0.0.0/8"]));
            proptest::prop_assert_eq!(untrusted.ip, peer.ip());
            proptest::prop_assert_eq!(untrusted.scheme, Scheme::Http);
        }
    }
}
