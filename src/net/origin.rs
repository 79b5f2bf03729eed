//! Cross-site protection for WebSocket upgrades and state-changing requests. Browsers
//! attach `Origin` to both and let any page open a WebSocket to any host, so the server
//! must check it: its own origin and `--allow-origin` ones pass, others get `403`. A request
//! without `Origin` does not come from a browser page (curl, the load tester) and passes.
//!
//! The server's own origin includes its loopback aliases on the same port: a page from
//! `http://127.0.0.1:3000` may use `http://localhost:3000`, a second origin with its own
//! six HTTP/1.1 connections, which is how the compare page keeps every HTTP lane live.
//! Reads from those origins get CORS headers ([`cors`]), never credentials.

use std::net::{IpAddr, SocketAddr};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The names this server answers to, for the `Host` check that runs before routing: a page
/// of another site that resolves its own name to this machine (DNS rebinding) sends its own
/// name as `Host`, and is refused before it can read or act.
///
/// Its own names follow the binding: the bound address (every interface address when it is
/// unspecified, see [`crate::net::interfaces::serving`]), the loopback aliases of its port
/// (`127.0.0.1`, `localhost`, `[::1]`) when it listens on loopback, the host of each
/// `--public-url` and of each `--allow-origin`. The same list, with schemes, is the server's
/// own origins for the Origin check and the CORS rule ([`origin_of`]).
#[derive(Debug, Clone)]
pub struct OwnHosts {
    /// Lower-case `host:port` values (and bare `host` where the port is the scheme's default).
    names: Vec<String>,
    /// Lower-case origins as browsers serialize them (`http://192.0.2.2:3000`,
    /// `https://class.example`): the bound addresses and loopback aliases over `http`, each
    /// `--public-url` over its own scheme.
    origins: Vec<String>,
}

impl OwnHosts {
    /// The names of a server bound to `addr` on a machine with `interfaces`, serving
    /// `scheme` (`http` or `https`, with --tls-…) there, reached also at `public` URLs and by
    /// `allow_origin` pages.
    pub fn build(
        addr: SocketAddr,
        scheme: &str,
        interfaces: &[crate::net::interfaces::Interface],
        public: &[PublicUrl],
        allow_origin: &[String],
    ) -> OwnHosts {
        let mut names = Vec::new();
        let mut origins = Vec::new();
        let port = addr.port();
        let mut add = |host: String, port: u16, default_port: u16| {
            if port == default_port {
                names.push(host.clone());
            }
            names.push(format!("{host}:{port}"));
        };
        let serving = crate::net::interfaces::serving(addr, interfaces);
        let mut hosts: Vec<String> = serving.iter().map(|ip| host_of_ip(*ip)).collect();
        if serving.iter().any(|ip| ip.is_loopback()) {
            hosts.extend(["127.0.0.1", "localhost", "[::1]"].map(String::from));
        }
        for host in hosts {
            origins.push(serialize_origin(scheme, &host, port));
            add(host, port, 80);
        }
        for url in public {
            origins.push(url.origin());
            add(url.host.clone(), url.port, url.default_port());
        }
        for origin in allow_origin {
            let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
            let (default_port, rest) = match origin.split_once("://") {
                Some(("https", rest)) => (443, rest),
                Some((_, rest)) => (80, rest),
                None => (80, origin.as_str()),
            };
            match rest
                .rsplit_once(':')
                .filter(|(_, p)| p.parse::<u16>().is_ok())
            {
                Some((host, p)) => add(
                    host.to_string(),
                    p.parse().unwrap_or(default_port),
                    default_port,
                ),
                None => add(rest.to_string(), default_port, default_port),
            }
        }
        names.sort();
        names.dedup();
        origins.sort();
        origins.dedup();
        OwnHosts { names, origins }
    }

    /// `Ok` when the request's `Host` is one of the server's own names.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(host) = headers.get(header::HOST) else {
            return Err(ApiError::UnknownHost("(no Host header)".into()));
        };
        let host = host.to_str().unwrap_or("(not text)");
        if self.names.iter().any(|n| n.eq_ignore_ascii_case(host)) {
            Ok(())
        } else {
            Err(ApiError::UnknownHost(host.chars().take(100).collect()))
        }
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether `origin` is one of the server's own origins (any of its names, over the scheme
    /// it is reached by there).
    pub fn is_own_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

/// `scheme://host` or `scheme://host:port`, the port left out when it is the scheme's
/// default, as browsers write `Origin` (RFC 6454 §6.2).
fn serialize_origin(scheme: &str, host: &str, port: u16) -> String {
    let default = if scheme == "https" { 443 } else { 80 };
    if port == default {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

/// A `--public-url`: `http(s)://HOST[:PORT][/]`, where HOST is a DNS name, an IPv4 address or
/// a bracketed IPv6 one. Parsed strictly: no user info, no path (the pages are served from
/// the root), no query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    scheme: &'static str,
    /// Lower case; IPv6 in brackets.
    host: String,
    port: u16,
}

/// Why a `--public-url` was refused: `why` names the broken part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--public-url {input:?}: {why} (expected e.g. https://class.example or http://lab.local:3000)"
)]
pub struct BadPublicUrl {
    input: String,
    why: &'static str,
}

impl PublicUrl {
    pub fn parse(s: &str) -> Result<PublicUrl, BadPublicUrl> {
        let err = |why: &'static str| BadPublicUrl {
            input: s.to_string(),
            why,
        };
        let lower = s.trim().to_ascii_lowercase();
        let (scheme, rest) = match lower.split_once("://") {
            Some(("http", rest)) => ("http", rest),
            Some(("https", rest)) => ("https", rest),
            _ => return Err(err("the scheme must be http or https")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(err(
                "give only scheme, host and port: the server is at the root",
            ));
        }
        let default = if scheme == "https" { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (ip, after) = v6.split_once(']').ok_or_else(|| err("unclosed ["))?;
            ip.parse::<std::net::Ipv6Addr>()
                .map_err(|_| err("not an IPv6 address in [ ]"))?;
            (format!("[{ip}]"), after)
        } else {
            let end = authority.find(':').unwrap_or(authority.len());
            (authority[..end].to_string(), &authority[end..])
        };
        let port = match port {
            "" => default,
            p => p
                .strip_prefix(':')
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| err("the port must be 1 to 65535"))?,
        };
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && (host.starts_with('[')
                || host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }));
        if !name_ok {
            return Err(err("the host must be a DNS name or an IP address"));
        }
        Ok(PublicUrl { scheme, host, port })
    }

    fn default_port(&self) -> u16 {
        if self.scheme == "https" { 443 } else { 80 }
    }

    /// The host, lower case, an IPv6 address in brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The origin a page loaded from this URL sends.
    pub fn origin(&self) -> String {
        serialize_origin(self.scheme, &self.host, self.port)
    }
}

impl std::fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/", self.origin())
    }
}

fn host_of_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Refuses a foreign `Origin` ([`origin_of`]); `scheme` is [`own_scheme`] of the request.
pub fn check(
    headers: &HeaderMap,
    own: &OwnHosts,
    allowed: &[String],
    scheme: &str,
) -> Result<(), ApiError> {
    match origin_of(headers, own, allowed, scheme) {
        Some(Origin::Foreign(origin)) => Err(ApiError::ForbiddenOrigin(origin)),
        _ => Ok(()),
    }
}

/// The Origin rule, applied to every request before routing (`app`'s edge layer): a
/// state-changing request from a foreign origin gets `403 forbidden_origin`; a CORS
/// preflight from an accepted one (EventSource's `Last-Event-ID`) is answered here; a read
/// from an accepted origin gets the CORS headers ([`cors`]). Everything else passes as it is.
pub async fn enforce(own: &OwnHosts, allowed: &[String], req: Request, next: Next) -> Response {
    let scheme = own_scheme(req.extensions());
    let origin = origin_of(req.headers(), own, allowed, scheme);
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    match origin {
        Some(Origin::Foreign(origin)) if !safe => ApiError::ForbiddenOrigin(origin).into_response(),
        Some(Origin::Accepted(origin))
            if req.method() == Method::OPTIONS
                && req
                    .headers()
                    .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) =>
        {
            let mut response = StatusCode::NO_CONTENT.into_response();
            let headers = response.headers_mut();
            cors(headers, &origin);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET"),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("last-event-id"),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            response
        }
        Some(Origin::Accepted(origin)) if safe => {
            let mut response = next.run(req).await;
            cors(response.headers_mut(), &origin);
            response
        }
        _ => next.run(req).await,
    }
}

/// The scheme prefix of the server's own origin for a request: `https://` when it arrived
/// over TLS (the listener marks it [`crate::net::tls::OverTls`]), else `http://`.
pub fn own_scheme(extensions: &axum::http::Extensions) -> &'static str {
    if extensions.get::<crate::net::tls::OverTls>().is_some() {
        "https://"
    } else {
        "http://"
    }
}

/// A request's `Origin`, judged: [`Origin::Accepted`] may read and act, [`Origin::Foreign`]
/// may only read what any site may.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Accepted(String),
    Foreign(String),
}

/// The request's `Origin`, if it has one: accepted when it may read and act (the server's
/// own origin, a loopback alias of it, one of [`OwnHosts`]' origins, or `--allow-origin`),
/// foreign otherwise. The own origin is `scheme` ([`own_scheme`]) + the Host: over HTTPS
/// `https://127.0.0.1:3443` is the server's own and `http://127.0.0.1:3443` is not, and the
/// other way round over HTTP.
pub fn origin_of(
    headers: &HeaderMap,
    own_hosts: &OwnHosts,
    allowed: &[String],
    scheme: &str,
) -> Option<Origin> {
    let origin = headers.get(header::ORIGIN)?;
    let origin = origin.to_str().unwrap_or("(not text)").to_string();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let own = host.is_some_and(|host| {
        origin.strip_prefix(scheme).is_some_and(|o| {
            o == host || loopback_port(o).is_some_and(|port| loopback_port(host) == Some(port))
        })
    });
    if own
        || own_hosts.is_own_origin(&origin)
        || allowed.iter().any(|a| a.trim_end_matches('/') == origin)
    {
        Some(Origin::Accepted(origin))
    } else {
        Some(Origin::Foreign(origin))
    }
}

/// The port of `HOST:PORT` when `HOST` names this machine's loopback interface.
fn loopback_port(host_port: &str) -> Option<&str> {
    let (host, port) = host_port.rsplit_once(':')?;
    let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
    (loopback && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())).then_some(port)
}

/// CORS headers that let `origin` read a response and its timing (without cookies: no
/// `Access-Control-Allow-Credentials`), for an origin [`origin_of`] accepted.
pub fn cors(headers: &mut HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value.clone());
        // Lets the page's Resource Timing see when the request was sent (the compare page
        // shows how long requests queue for a connection).
        headers.insert(
            header::HeaderName::from_static("timing-allow-origin"),
            value,
        );
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:3000".parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    fn own() -> OwnHosts {
        OwnHosts::build("127.0.0.1:3000".parse().unwrap(), "http", &[], &[], &[])
    }

    #[test]
    fn a_server_on_every_interface_answers_to_each_address_and_its_public_urls() {
        let interfaces: Vec<crate::net::interfaces::Interface> =
            [("lo", "127.0.0.1"), ("eth0", "192.0.2.2")]
                .iter()
                .map(|(n, ip)| crate::net::interfaces::Interface {
                    name: n.to_string(),
                    ip: ip.parse().unwrap(),
                })
                .collect();
        let public = [PublicUrl::parse("https://Class.Example/").unwrap()];
        let own = OwnHosts::build(
            "0.0.0.0:3000".parse().unwrap(),
            "http",
            &interfaces,
            &public,
            &[],
        );
        let host = |h: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, h.parse().unwrap());
            own.check(&m).is_ok()
        };
        for ok in [
            "192.0.2.2:3000",
            "127.0.0.1:3000",
            "localhost:3000",
            "class.example",
            "class.example:443",
        ] {
            assert!(host(ok), "{ok}");
        }
        for bad in [
            "0.0.0.0:3000",
            "192.0.2.3:3000",
            "evil.example:3000",
            "class.example:3000",
        ] {
            assert!(!host(bad), "{bad}");
        }
        let origin = |o: &str, h: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, h.parse().unwrap());
            m.insert(header::ORIGIN, o.parse().unwrap());
            origin_of(&m, &own, &[], "http://").map(|o| matches!(o, Origin::Accepted(_)))
        };
        assert_eq!(origin("https://class.example", "class.example"), Some(true));
        assert_eq!(
            origin("http://192.0.2.2:3000", "127.0.0.1:3000"),
            Some(true)
        );
        assert_eq!(
            origin("http://class.example", "127.0.0.1:3000"),
            Some(false)
        );
        assert_eq!(origin("https://evil.example", "class.example"), Some(false));
    }

    #[test]
    fn public_urls_parse_strictly() {
        for ok in [
            "https://class.example",
            "http://lab.local:3000/",
            "HTTPS://A-B.example:8443",
            "http://[2001:db8::1]:80",
            "http://192.0.2.2",
        ] {
            assert!(PublicUrl::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "class.example",
            "ftp://class.example",
            "https://",
            "https://class.example/app",
            "https://user@class.example",
            "https://class.example:0",
            "https://class.example:99999",
            "https://class.example:",
            "https://bad_name.example",
            "https://[::1",
            "https://a..b",
            "https://class.example?x",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            PublicUrl::parse("https://class.example:443")
                .unwrap()
                .origin(),
            "https://class.example"
        );
        assert_eq!(
            PublicUrl::parse("http://lab:8080").unwrap().origin(),
            "http://lab:8080"
        );
    }

    #[test]
    fn over_tls_the_own_origin_is_https() {
        // Own names elsewhere, so that only the request's Host and scheme decide here.
        let elsewhere = OwnHosts::build("192.0.2.9:4000".parse().unwrap(), "http", &[], &[], &[]);
        let mut h = headers(Some("https://127.0.0.1:3000"));
        assert!(check(&h, &elsewhere, &[], "https://").is_ok());
        assert!(check(&h, &elsewhere, &[], "http://").is_err());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:3000"),
        );
        assert!(check(&h, &elsewhere, &[], "https://").is_err());
        let mut marked = axum::http::Extensions::new();
        assert_eq!(own_scheme(&marked), "http://");
        marked.insert(crate::net::tls::OverTls);
        assert_eq!(own_scheme(&marked), "https://");
    }

    #[test]
    fn own_absent_and_allowed_origins_pass_others_are_forbidden() {
        let allowed = vec!["http://localhost:3001/".to_string()];
        assert!(check(&headers(None), &own(), &allowed, "http://").is_ok());
        assert!(
            check(
                &headers(Some("http://127.0.0.1:3000")),
                &own(),
                &allowed,
                "http://"
            )
            .is_ok()
        );
        assert!(
            check(
                &headers(Some("http://localhost:3001")),
                &own(),
                &allowed,
                "http://"
            )
            .is_ok()
        );
        assert!(
            check(
                &headers(Some("http://evil.example")),
                &own(),
                &allowed,
                "http://"
            )
            .is_err()
        );
        assert!(check(&headers(Some("null")), &own(), &allowed, "http://").is_err());
        assert!(
            check(
                &headers(Some("https://127.0.0.1:3000")),
                &own(),
                &allowed,
                "http://"
            )
            .is_err()
        );
    }

    #[test]
    fn only_the_servers_own_names_pass_the_host_check() {
        let own = OwnHosts::build(
            "127.0.0.1:3000".parse().unwrap(),
            "http",
            &crate::net::interfaces::list(),
            &[],
            &[
                "https://class.example".to_string(),
                "http://lab:8080/".to_string(),
            ],
        );
        let host = |h: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, h.parse().unwrap());
            own.check(&m)
        };
        for ok in [
            "127.0.0.1:3000",
            "localhost:3000",
            "LOCALHOST:3000",
            "[::1]:3000",
            "class.example",
            "class.example:443",
            "lab:8080",
        ] {
            assert!(host(ok).is_ok(), "{ok}");
        }
        for bad in [
            "evil.example:3000",
            "127.0.0.1:3001",
            "localhost",
            "127.0.0.1",
            "lab",
            "localhost.evil.example:3000",
            "",
        ] {
            assert!(host(bad).is_err(), "{bad}");
        }
        assert!(own.check(&HeaderMap::new()).is_err(), "no Host at all");
    }

    #[test]
    fn loopback_aliases_on_the_same_port_are_the_servers_own_origin() {
        let none: Vec<String> = Vec::new();
        for alias in ["http://localhost:3000", "http://[::1]:3000"] {
            assert_eq!(
                origin_of(&headers(Some(alias)), &own(), &none, "http://"),
                Some(Origin::Accepted(alias.into()))
            );
        }
        for foreign in [
            "http://localhost:3001",
            "http://localhost",
            "http://localhost.evil.example:3000",
            "http://10.0.0.1:3000",
        ] {
            assert!(
                check(&headers(Some(foreign)), &own(), &none, "http://").is_err(),
                "{foreign}"
            );
        }
    }
}
