//! Who is the operator: the one reader of the server's own figures and of every tag's record.
//!
//! On loopback nothing changes: every client of a server on `127.0.0.1` is on this machine.
//! A server bound to a network address is also reached by the students' laptops, so there
//! the operator endpoints tell [`Caller::Operator`] from [`Caller::Client`]: `/metrics` is
//! refused to a client (`403 operator_only`), `/api/stats` and its stream answer a client only
//! the per-transport figures the pages teach with, and the diagnostics answer a client only
//! about requests from its own address (`crate::diag`).
//!
//! The operator is a request whose client address is loopback, or that sends the operator's
//! token (`Authorization: Bearer TOKEN`, `--operator-token-file`). The client address is the
//! one every budget uses ([`ClientAddr`]): behind a `--trust-proxy` proxy, the client it
//! forwarded, never the proxy. A loopback peer that is *not* a trusted proxy but forwards
//! someone (`X-Forwarded-For`, `Forwarded`) is a proxy nobody declared, such as an nginx on
//! this machine started without `--trust-proxy`: for this decision its forwarded client counts,
//! so such a proxy does not make the whole class the operator. (Its clients still share its
//! budgets, as the docs of `--trust-proxy` say.)
//!
//! A `Bearer` token that is not the operator's is refused on every operator endpoint, from
//! loopback too, whatever the request could see without it: a mistyped token shows at once
//! rather than as a smaller answer. Other schemes (`Basic`, from a proxy's own login) are not
//! the operator's business and are ignored. The token is compared as an HMAC under a key
//! made at start-up, so the comparison takes the same time whatever the bytes ([`Token`]).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::ApiError;
use crate::http::ClientAddr;
use crate::net::forwarded::{self, Cidr, Client};

/// The shortest operator token accepted: 128 bits in base64url, as for tags.
pub const MIN_TOKEN_LEN: usize = 22;
/// The longest operator token accepted (and the most of a token file read).
pub const MAX_TOKEN_LEN: usize = 512;

type HmacSha256 = Hmac<Sha256>;

/// The operator's secret. Only its HMAC under a key of this process is kept, so the
/// comparison ([`Token::matches`]) is the constant-time one of the `hmac` crate and the
/// token's bytes are not in the process's memory after start-up; `Debug` shows nothing of it
/// (the configuration is `Debug`).
#[derive(Clone)]
pub struct Token {
    key: [u8; 32],
    mac: Vec<u8>,
}

/// Why an operator token, or its file, was refused. No variant holds the token itself.
#[derive(Debug, thiserror::Error)]
pub enum BadToken {
    #[error(
        "an operator token is {min} to {max} letters, digits or -._~+/ (then any =); make one with `head -c 24 /dev/urandom | base64`",
        min = MIN_TOKEN_LEN,
        max = MAX_TOKEN_LEN
    )]
    Shape,
    #[error("no OS randomness: {0}")]
    NoRandomness(getrandom::Error),
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} may be read or written by other users (mode {mode:o}); `chmod 600 {path}`")]
    Shared { path: String, mode: u32 },
    #[error("cannot read {path} as text: {source}")]
    NotText {
        path: String,
        source: std::io::Error,
    },
    #[error("the token in {path}: {source}")]
    InFile { path: String, source: Box<BadToken> },
}

impl Token {
    /// A token as given (`--operator-token`, `PUSHPOLL_OPERATOR_TOKEN`): 22–512 characters
    /// of RFC 6750's `b64token` (letters, digits, `-._~+/`, then any `=`), blanks around it
    /// ignored. The error never repeats the value (clap's message around it names a refused
    /// command-line value, as for every flag; a token file's content is never shown).
    pub fn parse(raw: &str) -> Result<Token, BadToken> {
        let token = raw.trim();
        let body = token.trim_end_matches('=');
        let alphabet = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
        if !(MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&token.len())
            || body.is_empty()
            || !body.bytes().all(alphabet)
        {
            return Err(BadToken::Shape);
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(BadToken::NoRandomness)?;
        Ok(Token {
            mac: Self::mac_of(&key, token.as_bytes()),
            key,
        })
    }

    /// The token in the file `path` (`--operator-token-file`), its trailing newline ignored.
    /// A file that others than its owner may read or write is refused, as ssh refuses such a
    /// private key: the token is only as secret as the file.
    pub fn from_file(path: &str) -> Result<Token, BadToken> {
        use std::io::Read as _;
        use std::os::unix::fs::PermissionsExt as _;
        let path_owned = || path.to_string();
        let file = std::fs::File::open(path).map_err(|source| BadToken::Open {
            path: path_owned(),
            source,
        })?;
        let mode = file
            .metadata()
            .map_err(|source| BadToken::Read {
                path: path_owned(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(BadToken::Shared {
                path: path_owned(),
                mode: mode & 0o777,
            });
        }
        // One byte past the longest token (and its newline) is enough to refuse a longer
        // file, so a path such as /dev/zero cannot make the start-up read forever.
        let mut text = String::new();
        file.take(MAX_TOKEN_LEN as u64 + 3)
            .read_to_string(&mut text)
            .map_err(|source| BadToken::NotText {
                path: path_owned(),
                source,
            })?;
        Token::parse(&text).map_err(|err| BadToken::InFile {
            path: path_owned(),
            source: Box::new(err),
        })
    }

    /// Whether `presented` is the token, in time that does not depend on where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.key) else {
            return false;
        };
        mac.update(presented.as_bytes());
        mac.verify_slice(&self.mac).is_ok()
    }

    fn mac_of(key: &[u8; 32], token: &[u8]) -> Vec<u8> {
        // HMAC takes a key of any length, so this never fails; an empty MAC would match
        // nothing.
        HmacSha256::new_from_slice(key)
            .map(|mac| mac.chain_update(token).finalize().into_bytes().to_vec())
            .unwrap_or_default()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(not shown)")
    }
}

/// Who sent a request to an operator endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Loopback, or the operator's token: sees everything.
    Operator,
    /// Anyone else, by client address: sees what the pages need, and its own requests.
    Client(IpAddr),
}

impl Caller {
    /// Whether this caller may see what the client at `from` did (a tagged request's record,
    /// its connection to kill). A request with no client address is the operator's only.
    pub fn sees(self, from: Option<IpAddr>) -> bool {
        match self {
            Caller::Operator => true,
            Caller::Client(ip) => from.is_some_and(|from| from.to_canonical() == ip),
        }
    }
}

/// What decides the [`Caller`]: the operator's token, if one was set, and the trusted
/// proxies (`--trust-proxy`). Built once at start-up.
pub struct Gate {
    token: Option<Token>,
    trusted: Vec<Cidr>,
    /// `127.0.0.0/8` and `::1/128`: the ranges an undeclared proxy on this machine is in.
    loopback: Vec<Cidr>,
}

impl Gate {
    pub fn new(token: Option<Token>, trusted: &[Cidr]) -> Gate {
        let loopback = ["127.0.0.0/8", "::1/128"]
            .into_iter()
            .map(|range| Cidr::parse(range).unwrap_or_else(|e| panic!("{range}: {e}")))
            .collect();
        Gate {
            token,
            trusted: trusted.to_vec(),
            loopback,
        }
    }

    /// Who `client` is, given the request's `headers`; `403 operator_only` for a `Bearer`
    /// token that is not the operator's.
    pub fn caller(&self, client: &Client, headers: &HeaderMap) -> Result<Caller, ApiError> {
        if let Some(presented) = bearer(headers) {
            return match &self.token {
                Some(token) if token.matches(presented) => Ok(Caller::Operator),
                Some(_) => Err(ApiError::OperatorOnly(
                    "the bearer token is not this server's operator token".into(),
                )),
                None => Err(ApiError::OperatorOnly(
                    "the bearer token is not this server's operator token (it has none: \
                     --operator-token-file)"
                        .into(),
                )),
            };
        }
        let ip = self.address(client, headers);
        Ok(if ip.is_loopback() {
            Caller::Operator
        } else {
            Caller::Client(ip)
        })
    }

    /// The address the operator rule sees `client` at: its [`ClientAddr`], except from a
    /// loopback peer that is not a trusted proxy, whose forwarded client (if it names one)
    /// counts. Canonical (`::ffff:10.0.0.2` is `10.0.0.2`). The diagnostics record it with
    /// each tagged request, so that a client reads and kills by the same address it is
    /// judged by.
    pub fn address(&self, client: &Client, headers: &HeaderMap) -> IpAddr {
        let ip = client.ip.to_canonical();
        if !ip.is_loopback() || self.trusted.iter().any(|c| c.contains(client.peer.ip())) {
            // Not this machine, or a trusted proxy's word was already taken.
            return ip;
        }
        forwarded::resolve(client.peer, client.scheme, headers, &self.loopback)
            .ip
            .to_canonical()
    }

    /// The refusal for a [`Caller::Client`] on an endpoint that is the operator's only.
    pub fn refusal(&self) -> ApiError {
        ApiError::OperatorOnly(if self.token.is_some() {
            "only loopback clients (this machine at 127.0.0.1, localhost or [::1]) or requests \
             with the operator token (Authorization: Bearer TOKEN) may read this"
                .into()
        } else {
            "only loopback clients (this machine at 127.0.0.1, localhost or [::1]) may read \
             this; to let others, start the server with --operator-token-file PATH and send \
             Authorization: Bearer TOKEN"
                .into()
        })
    }
}

/// The credentials of `Authorization: Bearer CREDENTIALS` (the scheme is case-insensitive,
/// RFC 9110 §11.1), from the first such header; other schemes are not looked at.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (scheme, credentials) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| credentials.trim())
        })
}

impl<S: Send + Sync> FromRequestParts<S> for Caller
where
    Arc<Gate>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let client = ClientAddr::from_request_parts(parts, state).await?;
        Arc::<Gate>::from_ref(state).caller(&client.0, &parts.headers)
    }
}

/// Route layer of the endpoints that are the operator's only (`/metrics`): a
/// [`Caller::Client`] gets `403 operator_only`.
pub async fn only(State(gate): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    match Caller::from_request_parts(&mut parts, &gate).await {
        Ok(Caller::Operator) => next.run(Request::from_parts(parts, body)).await,
        Ok(Caller::Client(_)) => gate.refusal().into_response(),
        Err(err) => err.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    const TOKEN: &str = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdl";

    fn client(ip: &str, peer: &str) -> Client {
        Client {
            ip: ip.parse().unwrap(),
            scheme: forwarded::Scheme::Http,
            peer: SocketAddr::new(peer.parse().unwrap(), 40000),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, value.parse().unwrap());
        }
        h
    }

    #[test]
    fn tokens_are_long_plain_words_and_match_only_themselves() {
        let token = Token::parse(TOKEN).unwrap();
        assert!(token.matches(TOKEN));
        assert!(!token.matches(&TOKEN[1..]));
        assert!(!token.matches(&format!("{TOKEN}x")));
        assert!(!token.matches(""));
        assert!(
            Token::parse(&format!("  {TOKEN}\n"))
                .unwrap()
                .matches(TOKEN)
        );
        assert!(Token::parse("abc+/def-._~ghijklmnopq==").is_ok());
        for bad in [
            "short",
            &"a".repeat(MIN_TOKEN_LEN - 1),
            &"a".repeat(MAX_TOKEN_LEN + 1),
            "aaaaaaaaaaa bbbbbbbbbbbbbbbb",
            "aaaaaaaaaaaaaaaaaaaaaaaaa\"",
            &"=".repeat(30),
            "aaaaaaaaaaa=aaaaaaaaaaaaaaaa",
        ] {
            let err = Token::parse(bad).unwrap_err().to_string();
            assert!(
                !err.contains(bad.trim()),
                "the error repeats the value: {err}"
            );
        }
        assert_eq!(format!("{token:?}"), "Token(not shown)");
    }

    #[test]
    fn a_token_file_must_be_its_owners_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
        let name = path.to_str().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = Token::from_file(name).unwrap_err().to_string();
            assert!(err.contains("chmod 600"), "{mode:o}: {err}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Token::from_file(name).unwrap().matches(TOKEN));
        std::fs::write(&path, "x".repeat(10_000)).unwrap();
        assert!(Token::from_file(name).is_err());
        assert!(Token::from_file("/nonexistent/token").is_err());
    }

    #[test]
    fn the_token_comes_from_one_flag_or_the_other_never_both() {
        use clap::Parser as _;
        use std::os::unix::fs::PermissionsExt as _;
        let parse = |args: &[&str]| crate::Config::try_parse_from([&["pushpoll"], args].concat());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, TOKEN).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = path.to_str().unwrap();
        assert!(parse(&[]).unwrap().operator_token().is_none());
        for args in [
            &["--operator-token", TOKEN][..],
            &["--operator-token-file", file][..],
        ] {
            let config = parse(args).unwrap();
            assert!(config.operator_token().unwrap().matches(TOKEN), "{args:?}");
            assert!(
                !format!("{config:?}").contains(TOKEN),
                "Debug shows the token"
            );
        }
        let both = parse(&["--operator-token-file", file, "--operator-token", TOKEN]);
        assert!(both.is_err());
    }

    #[test]
    fn loopback_is_the_operator_and_others_are_clients_by_address() {
        let gate = Gate::new(None, &[]);
        let none = HeaderMap::new();
        let caller = |ip: &str, h: &HeaderMap| gate.caller(&client(ip, ip), h).unwrap();
        assert_eq!(caller("127.0.0.1", &none), Caller::Operator);
        assert_eq!(caller("127.4.5.6", &none), Caller::Operator);
        assert_eq!(caller("::1", &none), Caller::Operator);
        assert_eq!(caller("::ffff:127.0.0.1", &none), Caller::Operator);
        let lan: IpAddr = "10.213.0.2".parse().unwrap();
        assert_eq!(caller("10.213.0.2", &none), Caller::Client(lan));
        assert_eq!(
            caller("::ffff:10.213.0.2", &none),
            Caller::Client(lan),
            "a v4 client of a [::] listener is its v4 address"
        );
        // A client cannot claim loopback with a header: only a proxy may forward.
        let forged = headers(&[("x-forwarded-for", "127.0.0.1")]);
        assert_eq!(caller("10.213.0.2", &forged), Caller::Client(lan));
        // Another scheme than Bearer is not looked at.
        let basic = headers(&[("authorization", "Basic dXNlcjpwYXNz")]);
        assert_eq!(caller("10.213.0.2", &basic), Caller::Client(lan));
        assert_eq!(caller("127.0.0.1", &basic), Caller::Operator);
    }

    #[test]
    fn the_token_makes_the_operator_and_a_wrong_one_is_refused_everywhere() {
        let gate = Gate::new(Some(Token::parse(TOKEN).unwrap()), &[]);
        let lan = client("10.213.0.2", "10.213.0.2");
        let ok = headers(&[("authorization", &format!("Bearer {TOKEN}"))]);
        assert_eq!(gate.caller(&lan, &ok).unwrap(), Caller::Operator);
        let lower = headers(&[("authorization", &format!("bearer  {TOKEN} "))]);
        assert_eq!(gate.caller(&lan, &lower).unwrap(), Caller::Operator);
        let wrong = headers(&[("authorization", "Bearer Zm9vYmFyYmF6cXV4cXV1eGNvcmdx")]);
        for who in [&lan, &client("127.0.0.1", "127.0.0.1")] {
            let err = gate.caller(who, &wrong).unwrap_err();
            assert_eq!((err.status().as_u16(), err.code()), (403, "operator_only"));
        }
        let unset = Gate::new(None, &[]);
        assert!(
            unset.caller(&lan, &ok).is_err(),
            "no token set: none matches"
        );
    }

    #[test]
    fn behind_a_proxy_the_forwarded_client_decides() {
        let proxy = Cidr::parse("127.0.0.2").unwrap();
        let gate = Gate::new(None, &[proxy]);
        let none = HeaderMap::new();
        // As forwarded::resolve decided for a trusted peer: the client it forwarded.
        let lan: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(
            gate.caller(&client("203.0.113.7", "127.0.0.2"), &none)
                .unwrap(),
            Caller::Client(lan)
        );
        assert_eq!(
            gate.caller(&client("127.0.0.1", "127.0.0.2"), &none)
                .unwrap(),
            Caller::Operator
        );
        // A proxy on this machine that is not trusted: what it forwards decides.
        let untrusted = Gate::new(None, &[]);
        let from_lan = headers(&[("x-forwarded-for", "203.0.113.7")]);
        let peer = client("127.0.0.1", "127.0.0.1");
        assert_eq!(
            untrusted.caller(&peer, &from_lan).unwrap(),
            Caller::Client(lan)
        );
        let rfc7239 = headers(&[("forwarded", "for=203.0.113.7")]);
        assert_eq!(
            untrusted.caller(&peer, &rfc7239).unwrap(),
            Caller::Client(lan)
        );
        let from_here = headers(&[("x-forwarded-for", "127.0.0.1, ::1")]);
        assert_eq!(
            untrusted.caller(&peer, &from_here).unwrap(),
            Caller::Operator
        );
        // Left of a non-loopback hop, a loopback claim is the client's own writing.
        let claimed = headers(&[("x-forwarded-for", "127.0.0.1, 203.0.113.7")]);
        assert_eq!(
            untrusted.caller(&peer, &claimed).unwrap(),
            Caller::Client(lan)
        );
    }

    #[test]
    fn a_client_sees_its_own_address_only() {
        let me: IpAddr = "10.213.0.2".parse().unwrap();
        let caller = Caller::Client(me);
        assert!(caller.sees(Some(me)));
        assert!(caller.sees(Some("::ffff:10.213.0.2".parse().unwrap())));
        assert!(!caller.sees(Some("10.213.0.3".parse().unwrap())));
        assert!(!caller.sees(Some("127.0.0.1".parse().unwrap())));
        assert!(!caller.sees(None));
        assert!(Caller::Operator.sees(None));
    }
}
