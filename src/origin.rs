//! Cross-site protection for WebSocket upgrades and state-changing requests. Browsers
//! attach `Origin` to both and let any page open a WebSocket to any host, so the server
//! must check it: its own origin and `--allow-origin` ones pass, others get `403`. A request
//! without `Origin` does not come from a browser page (curl, the load tester) and passes.
//!
//! The server's own origin includes its loopback aliases on the same port: a page from
//! `http://127.0.0.1:3000` may use `http://localhost:3000`, a second origin with its own
//! six HTTP/1.1 connections, which is how the compare page keeps five transports live.
//! Reads from those origins get CORS headers ([`cors`]), never credentials.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderValue, header};

use crate::error::ApiError;

/// The names this server answers to, for the `Host` check that runs before routing: a page
/// of another site that resolves its own name to this machine (DNS rebinding) sends its own
/// name as `Host`, and is refused before it can read or act.
///
/// Its own names are the bound address, the loopback aliases of its port (`127.0.0.1`,
/// `localhost`, `[::1]`) when it listens on loopback, and the host of each `--allow-origin`.
#[derive(Debug, Clone)]
pub struct OwnHosts {
    /// Lower-case `host:port` values (and bare `host` where the port is the scheme's default).
    names: Vec<String>,
}

impl OwnHosts {
    pub fn new(addr: SocketAddr, allow_origin: &[String]) -> OwnHosts {
        let mut names = Vec::new();
        let port = addr.port();
        let mut add = |host: String, port: u16, default_port: u16| {
            if port == default_port {
                names.push(host.clone());
            }
            names.push(format!("{host}:{port}"));
        };
        add(host_of_ip(addr.ip()), port, 80);
        if addr.ip().is_loopback() {
            for alias in ["127.0.0.1", "localhost", "[::1]"] {
                add(alias.to_string(), port, 80);
            }
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
        OwnHosts { names }
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
}

fn host_of_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Refuses a foreign `Origin` ([`origin_of`]); `scheme` is [`own_scheme`] of the request.
pub fn check(headers: &HeaderMap, allowed: &[String], scheme: &str) -> Result<(), ApiError> {
    match origin_of(headers, allowed, scheme) {
        Some(Err(origin)) => Err(ApiError::ForbiddenOrigin(origin)),
        _ => Ok(()),
    }
}

/// The scheme prefix of the server's own origin for a request: `https://` when it arrived
/// over TLS (the listener marks it [`crate::tls::OverTls`]), else `http://`.
pub fn own_scheme(extensions: &axum::http::Extensions) -> &'static str {
    if extensions.get::<crate::tls::OverTls>().is_some() {
        "https://"
    } else {
        "http://"
    }
}

/// The request's `Origin`, if it has one: `Ok` when it may read and act (the server's own
/// origin, a loopback alias of it, or `--allow-origin`), `Err` when it is foreign. The own
/// origin is `scheme` ([`own_scheme`]) + the Host: over HTTPS `https://127.0.0.1:3443` is
/// the server's own and `http://127.0.0.1:3443` is not, and the other way round over HTTP.
pub fn origin_of(
    headers: &HeaderMap,
    allowed: &[String],
    scheme: &str,
) -> Option<Result<String, String>> {
    let origin = headers.get(header::ORIGIN)?;
    let origin = origin.to_str().unwrap_or("(not text)").to_string();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let own = host.is_some_and(|host| {
        origin.strip_prefix(scheme).is_some_and(|o| {
            o == host || loopback_port(o).is_some_and(|port| loopback_port(host) == Some(port))
        })
    });
    if own || allowed.iter().any(|a| a.trim_end_matches('/') == origin) {
        Some(Ok(origin))
    } else {
        Some(Err(origin))
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

    #[test]
    fn over_tls_the_own_origin_is_https() {
        let mut h = headers(Some("https://127.0.0.1:3000"));
        assert!(check(&h, &[], "https://").is_ok());
        assert!(check(&h, &[], "http://").is_err());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:3000"),
        );
        assert!(check(&h, &[], "https://").is_err());
        let mut marked = axum::http::Extensions::new();
        assert_eq!(own_scheme(&marked), "http://");
        marked.insert(crate::tls::OverTls);
        assert_eq!(own_scheme(&marked), "https://");
    }

    #[test]
    fn own_absent_and_allowed_origins_pass_others_are_forbidden() {
        let allowed = vec!["http://localhost:3001/".to_string()];
        assert!(check(&headers(None), &allowed, "http://").is_ok());
        assert!(check(&headers(Some("http://127.0.0.1:3000")), &allowed, "http://").is_ok());
        assert!(check(&headers(Some("http://localhost:3001")), &allowed, "http://").is_ok());
        assert!(check(&headers(Some("http://evil.example")), &allowed, "http://").is_err());
        assert!(check(&headers(Some("null")), &allowed, "http://").is_err());
        assert!(
            check(
                &headers(Some("https://127.0.0.1:3000")),
                &allowed,
                "http://"
            )
            .is_err()
        );
    }

    #[test]
    fn only_the_servers_own_names_pass_the_host_check() {
        let own = OwnHosts::new(
            "127.0.0.1:3000".parse().unwrap(),
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
                origin_of(&headers(Some(alias)), &none, "http://"),
                Some(Ok(alias.into()))
            );
        }
        for foreign in [
            "http://localhost:3001",
            "http://localhost",
            "http://localhost.evil.example:3000",
            "http://10.0.0.1:3000",
        ] {
            assert!(
                check(&headers(Some(foreign)), &none, "http://").is_err(),
                "{foreign}"
            );
        }
    }
}
