//! WebTransport's network side: the QUIC endpoint on UDP at the TCP server's port number, its
//! bounds, and the certificate it presents.
//!
//! - **Certificate.** With `--tls-cert`/`--tls-key` the real certificate serves and browsers
//!   check it as usual. Without them a certificate is made at start ([`Minted`]): ECDSA P-256,
//!   not-before a minute in the past (a client clock a little behind still accepts it), valid
//!   [`VALIDITY`] in all, because browsers take a certificate by its hash
//!   (`serverCertificateHashes`) only if it is ECDSA and valid at most 14 days. The pages read
//!   its SHA-256 hash from `GET /api/webtransport` ([`Hashes`]).
//! - **Rotation.** A made certificate is replaced every `--webtransport-rotate` (hidden; a
//!   test makes it short), well before it expires: [`ROTATION_NOTICE`] before the swap the
//!   next one is made and its hash listed beside the current one, so a page that read the
//!   list just before the swap still connects; then the endpoint's server configuration is
//!   swapped (quinn keeps the connections already open on the old one).
//! - **Bounds** ([`Bounds`]): QUIC's idle timeout, the streams a peer may open at once, the
//!   datagram buffers. The handshake deadline, the per-peer and total caps and the send
//!   deadline are the session's (`crate::transport::webtransport`).

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use wtransport::config::QuicTransportConfig;
use wtransport::tls::{Certificate, CertificateChain, PrivateKey};
use wtransport::{Endpoint, Identity, ServerConfig, endpoint::endpoint_side::Server};

/// How long a made certificate is valid, not-before to not-after: under the 14 days
/// browsers allow for `serverCertificateHashes`, with an hour's margin for how they count.
pub const VALIDITY: Duration = Duration::from_secs(14 * 24 * 3600 - 3600);

/// How far in the past a made certificate's validity starts, for clients whose clock is
/// a little behind.
pub const BACKDATE: Duration = Duration::from_secs(60);

/// `--webtransport-rotate`'s default: a new certificate every 7 days, half its validity.
pub const DEFAULT_ROTATE: &str = "168h";

/// How long before a swap the next certificate's hash is listed beside the current one: an
/// hour, or half the rotation period when that is shorter (the tests).
pub const ROTATION_NOTICE: Duration = Duration::from_secs(3600);

/// Bidirectional streams a peer may have open at once: the session's CONNECT request, one
/// for commands (chat, strokes), and one to spare for a client reopening it.
pub const MAX_BIDI_STREAMS: u32 = 3;

/// Unidirectional streams a peer may have open at once: HTTP/3's control stream and QPACK's
/// encoder and decoder streams, which every client opens, and one to spare. Client uni
/// streams carry nothing the server reads.
pub const MAX_UNI_STREAMS: u32 = 4;

/// Datagrams from the peer held unread: the server reads none (upstream is a stream), so a
/// little room only, and quinn drops what does not fit.
pub const DATAGRAM_RECEIVE_BUFFER: usize = 4 * 1024;

/// Datagrams waiting to be sent per connection; when full, quinn drops the oldest, which is
/// what datagram mode accepts (a lost tick or stroke).
pub const DATAGRAM_SEND_BUFFER: usize = 64 * 1024;

/// Bytes a peer may have in flight towards the server per stream and per connection: its
/// commands are small lines.
pub const RECEIVE_WINDOW: u32 = 64 * 1024;

/// The QUIC transport's bounds, from the flags.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// QUIC's idle timeout: a connection nothing was heard on for this long is dropped
    /// (`--dead-peer-timeout`; the server's heartbeats keep a live one busy).
    pub idle: Duration,
}

/// One `serverCertificateHashes` entry, as the browser API takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateHash {
    pub algorithm: &'static str,
    /// The SHA-256 of the certificate's DER, base64 (standard, padded).
    pub value: String,
}

impl CertificateHash {
    fn of(cert: &Certificate) -> CertificateHash {
        CertificateHash {
            algorithm: "sha-256",
            value: base64::engine::general_purpose::STANDARD.encode(cert.hash().as_ref()),
        }
    }
}

/// The hashes the pages pin: the current made certificate's and, during a rotation's
/// notice, the next one's. Empty with `--tls-cert` (the browser checks the real chain).
#[derive(Default)]
pub struct Hashes(RwLock<Vec<CertificateHash>>);

impl Hashes {
    pub fn list(&self) -> Vec<CertificateHash> {
        // A poisoned lock only means a writer panicked mid-swap; the list is still whole.
        self.0
            .read()
            .map_or_else(|e| e.into_inner().clone(), |l| l.clone())
    }

    fn set(&self, list: Vec<CertificateHash>) {
        match self.0.write() {
            Ok(mut l) => *l = list,
            Err(e) => *e.into_inner() = list,
        }
    }
}

/// A certificate made at start or at a rotation.
pub struct Minted {
    pub identity: Identity,
    pub hash: CertificateHash,
}

/// Makes a certificate for `names`: ECDSA P-256, valid from [`BACKDATE`] ago for [`VALIDITY`].
pub fn mint(names: &[String]) -> anyhow::Result<Minted> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("cannot make a P-256 key")?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .context("a server name is not valid in a certificate")?;
    let not_before = time::OffsetDateTime::now_utc() - BACKDATE;
    params.not_before = not_before;
    params.not_after = not_before + VALIDITY;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pushpoll WebTransport");
    let cert = params
        .self_signed(&key)
        .context("cannot sign the certificate")?;
    let cert = Certificate::from_der(cert.der().to_vec())
        .map_err(|e| anyhow::anyhow!("the made certificate does not parse: {e}"))?;
    let hash = CertificateHash::of(&cert);
    let identity = Identity::new(
        CertificateChain::single(cert),
        PrivateKey::from_der_pkcs8(key.serialize_der()),
    );
    Ok(Minted { identity, hash })
}

/// The server's QUIC configuration with `identity`, bound to `addr`.
fn server_config(
    addr: SocketAddr,
    identity: Identity,
    bounds: Bounds,
) -> anyhow::Result<ServerConfig> {
    let mut transport = QuicTransportConfig::default();
    let idle = quinn_idle(bounds.idle)?;
    transport
        .max_idle_timeout(Some(idle))
        .max_concurrent_bidi_streams(MAX_BIDI_STREAMS.into())
        .max_concurrent_uni_streams(MAX_UNI_STREAMS.into())
        .datagram_receive_buffer_size(Some(DATAGRAM_RECEIVE_BUFFER))
        .datagram_send_buffer_size(DATAGRAM_SEND_BUFFER)
        .stream_receive_window(RECEIVE_WINDOW.into())
        .receive_window(RECEIVE_WINDOW.into());
    Ok(ServerConfig::builder()
        .with_bind_address(addr)
        .with_custom_transport(identity, transport)
        .build())
}

fn quinn_idle(idle: Duration) -> anyhow::Result<wtransport::quinn::IdleTimeout> {
    wtransport::quinn::IdleTimeout::try_from(idle)
        .map_err(|_| anyhow::anyhow!("--dead-peer-timeout is too long for QUIC's idle timeout"))
}

/// The running endpoint and what the pages read about it.
pub struct Quic {
    pub endpoint: Arc<Endpoint<Server>>,
    pub published: Published,
}

/// What `GET /api/webtransport` tells the pages.
#[derive(Clone)]
pub struct Published {
    /// The UDP port (the TCP server's port number).
    pub port: u16,
    pub hashes: Arc<Hashes>,
    /// The chat session tickets sessions redeem (`?ticket=`).
    pub tickets: Arc<crate::net::tickets::Tickets>,
}

/// Where the certificate comes from.
pub enum Source {
    /// `--tls-cert`/`--tls-key`, read with wtransport's PEM loader.
    Files {
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
    },
    /// Made at start for these names, replaced every `rotate`.
    Made {
        names: Vec<String>,
        rotate: Duration,
    },
}

/// Whether `err` (from [`bind`]) says the UDP address is taken or not this machine's.
pub fn port_taken(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::AddrInUse | std::io::ErrorKind::AddrNotAvailable
            )
        })
}

/// Binds the QUIC endpoint on UDP `addr` and, for a made certificate, starts its rotation
/// task on `tracker` (it stops at `shutdown`).
pub async fn bind(
    addr: SocketAddr,
    source: Source,
    bounds: Bounds,
    ticket_ttl: Duration,
    shutdown: CancellationToken,
    tracker: &tokio_util::task::TaskTracker,
) -> anyhow::Result<Quic> {
    let hashes = Arc::new(Hashes::default());
    let (identity, rotation) = match source {
        Source::Files { cert, key } => (
            Identity::load_pemfiles(&cert, &key)
                .await
                .with_context(|| format!("cannot read {} and {}", cert.display(), key.display()))?,
            None,
        ),
        Source::Made { names, rotate } => {
            // Rotated before it expires, with the notice inside the period.
            anyhow::ensure!(
                rotate < VALIDITY - BACKDATE,
                "--webtransport-rotate must be shorter than the certificate's validity ({} h)",
                (VALIDITY - BACKDATE).as_secs() / 3600
            );
            let minted = mint(&names)?;
            hashes.set(vec![minted.hash.clone()]);
            (minted.identity, Some((names, rotate, minted.hash)))
        }
    };
    let endpoint = Endpoint::server(server_config(addr, identity, bounds)?)
        .with_context(|| format!("cannot bind UDP {addr} for WebTransport"))?;
    let port = endpoint
        .local_addr()
        .context("the QUIC endpoint has no address")?
        .port();
    let endpoint = Arc::new(endpoint);
    if let Some((names, rotate, current)) = rotation {
        tracker.spawn(rotate_forever(
            endpoint.clone(),
            hashes.clone(),
            Rotation {
                addr,
                names,
                every: rotate,
                bounds,
                current,
            },
            shutdown,
        ));
    }
    Ok(Quic {
        endpoint,
        published: Published {
            port,
            hashes,
            tickets: Arc::new(crate::net::tickets::Tickets::new(ticket_ttl)),
        },
    })
}

struct Rotation {
    addr: SocketAddr,
    names: Vec<String>,
    every: Duration,
    bounds: Bounds,
    current: CertificateHash,
}

/// Every `every`: list the next certificate's hash [`ROTATION_NOTICE`] (at most half the
/// period) ahead, then swap the endpoint to it. A failure to make or load one is logged and
/// retried at the next period; the current certificate keeps serving meanwhile (it is valid
/// for twice the default period).
async fn rotate_forever(
    endpoint: Arc<Endpoint<Server>>,
    hashes: Arc<Hashes>,
    mut rotation: Rotation,
    shutdown: CancellationToken,
) {
    let notice = ROTATION_NOTICE.min(rotation.every / 2);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(rotation.every - notice) => {}
        }
        let next = match mint(&rotation.names) {
            Ok(next) => next,
            Err(err) => {
                tracing::error!(?err, "cannot make the next WebTransport certificate");
                continue;
            }
        };
        hashes.set(vec![rotation.current.clone(), next.hash.clone()]);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(notice) => {}
        }
        let swapped = server_config(rotation.addr, next.identity, rotation.bounds)
            .and_then(|config| Ok(endpoint.reload_config(config, false)?));
        match swapped {
            Ok(()) => {
                hashes.set(vec![next.hash.clone()]);
                rotation.current = next.hash;
                tracing::info!(hash = %rotation.current.value, "WebTransport certificate rotated");
            }
            Err(err) => {
                hashes.set(vec![rotation.current.clone()]);
                tracing::error!(?err, "cannot swap the WebTransport certificate");
            }
        }
    }
}
