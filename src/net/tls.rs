//! HTTPS: the certificate the server presents (from `--tls-cert`/`--tls-key`, or made at
//! start-up by `--tls-self-signed`) and the rustls configuration that offers HTTP/2 and
//! HTTP/1.1 by ALPN. The listener does the handshakes; this module only prepares them.
//!
//! A self-signed certificate names the server as [`server_names`] lists it; nothing verifies
//! it but its fingerprint, which [`Tls::describe`] prints in the form browsers show
//! (SHA-256, colon-separated upper-case hex), with the SPKI pin that Chromium's
//! `--ignore-certificate-errors-spki-list` and curl's `--pinnedpubkey` take.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};
use tokio_rustls::TlsAcceptor;

use crate::Config;

/// The ALPN protocol ids offered, in order of preference: HTTP/2 (RFC 9113 §3.2), then
/// HTTP/1.1 (RFC 7301 §6).
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Marks a request that arrived over TLS (set by the listener on every such request): the
/// session cookie then gets `Secure` (RFC 6265 §4.1.2.5).
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// What the listener needs to speak TLS, and what start-up prints about it.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: TlsAcceptor,
    /// SHA-256 of the leaf certificate's DER, `AB:CD:…`.
    pub fingerprint: String,
    /// Base64 SHA-256 of the leaf's SubjectPublicKeyInfo (the "SPKI pin").
    pub spki_pin: String,
    /// The names a self-signed certificate was made for; empty for `--tls-cert`.
    pub self_signed_for: Vec<String>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// The names a self-signed certificate covers for a server bound to `addr`: the loopback
/// names, and the bound address itself when it is a specific one (an unspecified `0.0.0.0` or
/// `[::]` is no name a client can use). Extend this list, not its callers, when the server
/// learns more names (interfaces, `--public-url`).
pub fn server_names(addr: SocketAddr) -> Vec<String> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let ip = addr.ip();
    if !ip.is_unspecified() {
        let bound = ip.to_string();
        if !names.contains(&bound) {
            names.push(bound);
        }
    }
    names
}

impl Tls {
    /// The TLS set-up the flags ask for, or `None` to serve plain HTTP. `addr` is the address
    /// actually bound (for the self-signed certificate's names).
    pub fn from_config(config: &Config, addr: SocketAddr) -> anyhow::Result<Option<Tls>> {
        match (&config.tls_cert, &config.tls_key, config.tls_self_signed) {
            (None, None, false) => Ok(None),
            (Some(cert), Some(key), false) => Tls::from_pem_files(cert, key).map(Some),
            (None, None, true) => {
                // The bound address's names, then every interface address a server on
                // `0.0.0.0`/`[::]` answers at, then each --public-url host: the names the
                // Host check accepts (origin::OwnHosts).
                let mut names = server_names(addr);
                let serving =
                    crate::net::interfaces::serving(addr, &crate::net::interfaces::list());
                let public = config.public_url.iter().map(|u| {
                    u.host()
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string()
                });
                for name in serving.iter().map(|ip| ip.to_string()).chain(public) {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                Tls::self_signed(&names).map(Some)
            }
            // clap's `requires`/`conflicts_with` refuse these before we get here.
            _ => bail!("give --tls-cert with --tls-key, or --tls-self-signed alone"),
        }
    }

    /// A certificate chain and key read from PEM files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> anyhow::Result<Tls> {
        let chain = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("cannot read the certificate {}", cert.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
        if chain.is_empty() {
            bail!("{} holds no CERTIFICATE block", cert.display());
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("cannot read a PEM private key from {}", key.display()))?;
        Tls::new(chain, key, Vec::new())
    }

    /// A fresh self-signed certificate (ECDSA P-256) for `names`.
    pub fn self_signed(names: &[String]) -> anyhow::Result<Tls> {
        let made = rcgen::generate_simple_self_signed(names.to_vec())
            .context("cannot make a self-signed certificate")?;
        let key = PrivateKeyDer::try_from(made.signing_key.serialize_der())
            .map_err(|e| anyhow::anyhow!("the generated key: {e}"))?;
        Tls::new(vec![made.cert.der().clone()], key, names.to_vec())
    }

    fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        self_signed_for: Vec<String>,
    ) -> anyhow::Result<Tls> {
        let leaf = chain[0].clone();
        let spki = spki_of(&leaf)?;
        let config = server_config(chain, key)?;
        Ok(Tls {
            acceptor: TlsAcceptor::from(config),
            fingerprint: fingerprint(&leaf),
            spki_pin: base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki)),
            self_signed_for,
        })
    }

    /// The lines start-up prints after the URL.
    pub fn describe(&self) -> String {
        let what = if self.self_signed_for.is_empty() {
            "TLS certificate".to_owned()
        } else {
            format!(
                "TLS self-signed certificate for {}",
                self.self_signed_for.join(", ")
            )
        };
        format!(
            "{what}: SHA-256 fingerprint {}\nSPKI pin (sha256, base64): {}",
            self.fingerprint, self.spki_pin
        )
    }
}

/// Adds `Secure` to every `Set-Cookie` of a response sent over TLS that lacks it, so a
/// cookie set over HTTPS is never sent back over plain HTTP (RFC 6265 §4.1.2.5).
pub fn secure_cookies(headers: &mut HeaderMap) {
    let cookies: Vec<HeaderValue> = headers.get_all(SET_COOKIE).iter().cloned().collect();
    if cookies.is_empty() {
        return;
    }
    headers.remove(SET_COOKIE);
    for cookie in cookies {
        let secured = match cookie.to_str() {
            Ok(text)
                if !text
                    .split(';')
                    .any(|attr| attr.trim().eq_ignore_ascii_case("secure")) =>
            {
                HeaderValue::from_str(&format!("{text}; Secure")).unwrap_or(cookie)
            }
            _ => cookie,
        };
        headers.append(SET_COOKIE, secured);
    }
}

/// rustls with the ring provider, TLS 1.2 and 1.3, no client certificates, and ALPN offering
/// `h2` then `http/1.1`.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<Arc<ServerConfig>> {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .context("the certificate and key do not go together")?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// SHA-256 of `der` as browsers print it: `AB:CD:…`, 32 upper-case hex pairs.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The SubjectPublicKeyInfo inside a certificate, parsed by rustls's own webpki.
fn spki_of(leaf: &CertificateDer<'_>) -> anyhow::Result<Vec<u8>> {
    let parsed = rustls::server::ParsedCertificate::try_from(leaf)
        .map_err(|e| anyhow::anyhow!("the certificate does not parse: {e}"))?;
    Ok(parsed.subject_public_key_info().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_loopback_plus_a_specific_bound_address() {
        let any: SocketAddr = "0.0.0.0:3000".parse().unwrap();
        assert_eq!(server_names(any), ["localhost", "127.0.0.1", "::1"]);
        let lo: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        assert_eq!(server_names(lo).len(), 3);
        let lan: SocketAddr = "192.168.1.20:3000".parse().unwrap();
        assert_eq!(server_names(lan).last().unwrap(), "192.168.1.20");
    }

    #[test]
    fn cookies_get_secure_once() {
        let mut headers = HeaderMap::new();
        headers.append(
            SET_COOKIE,
            HeaderValue::from_static("a=1; Path=/; HttpOnly"),
        );
        headers.append(SET_COOKIE, HeaderValue::from_static("b=2; secure"));
        secure_cookies(&mut headers);
        let all: Vec<_> = headers.get_all(SET_COOKIE).iter().collect();
        assert_eq!(all, ["a=1; Path=/; HttpOnly; Secure", "b=2; secure"]);
    }

    #[test]
    fn a_self_signed_certificate_has_a_browser_style_fingerprint() {
        let tls = Tls::self_signed(&server_names("127.0.0.1:0".parse().unwrap())).unwrap();
        assert_eq!(tls.fingerprint.len(), 32 * 3 - 1);
        assert!(
            tls.fingerprint
                .split(':')
                .all(|h| h.len() == 2 && h.chars().all(|c| c.is_ascii_hexdigit()))
        );
        assert!(tls.describe().contains(&tls.fingerprint));
        assert_eq!(tls.spki_pin.len(), 44);
    }
}
