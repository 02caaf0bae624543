//! A TLS client for the tests, from rustls and hyper: HTTP/1.1 or HTTP/2 (chosen by ALPN)
//! over a handshake that trusts a test CA and may present a client certificate.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serve_tls::rustls::pki_types::pem::PemObject;
use serve_tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serve_tls::rustls::{self, ClientConfig, RootCertStore};
use serve_tls::testing::Pki;

/// Which HTTP the client asks for with ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    Http1,
    H2,
}

/// A client configuration trusting `pki`'s CA, with its client certificate when `client`.
pub fn config(pki: &Pki, alpn: Alpn, client: bool) -> Arc<ClientConfig> {
    trusting(&[pki], alpn, client)
}

/// A client configuration trusting the CAs of every PKI of `pkis`, with the first one's
/// client certificate when `client`.
pub fn trusting(pkis: &[&Pki], alpn: Alpn, client: bool) -> Arc<ClientConfig> {
    let pki = pkis[0];
    let mut roots = RootCertStore::empty();
    for p in pkis {
        for ca in CertificateDer::pem_file_iter(&p.ca).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = if client {
        let chain = CertificateDer::pem_file_iter(&pki.client_cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(&pki.client_key).unwrap();
        builder.with_client_auth_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    config.alpn_protocols = match alpn {
        Alpn::Http1 => vec![b"http/1.1".to_vec()],
        Alpn::H2 => vec![b"h2".to_vec()],
    };
    Arc::new(config)
}

/// What a request over TLS came back with.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub version: hyper::http::Version,
    pub body: String,
    /// The subject's common name of the certificate the server presented.
    pub server_cn: String,
}

/// Connects, shakes hands and sends one request; `Err` with the handshake's or the
/// connection's error.
pub async fn request(
    addr: &str,
    config: Arc<ClientConfig>,
    method: &str,
    path: &str,
    body: &str,
) -> Result<Answer, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (_, session) = tls.get_ref();
    let server_cn = session
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| common_name(c.as_ref()))
        .unwrap_or_default();
    let h2 = session.alpn_protocol() == Some(b"h2");
    let req = hyper::http::Request::builder()
        .method(method)
        .uri(format!("https://{addr}{path}"))
        .header("host", addr)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let io = TokioIo::new(tls);
    let res = if h2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| e.to_string())?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| e.to_string())?
    };
    let status = res.status().as_u16();
    let version = res.version();
    let bytes = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Answer {
        status,
        version,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        server_cn,
    })
}

/// The CN of a DER certificate's subject, found by its OID (2.5.4.3) and read as the
/// UTF8String or PrintableString that follows: enough for the certificates rcgen makes.
fn common_name(der: &[u8]) -> String {
    let oid = [0x06, 0x03, 0x55, 0x04, 0x03];
    // The subject comes after the issuer: the last CN in the certificate is the subject's.
    let Some(at) = der.windows(oid.len()).rposition(|w| w == oid) else {
        return String::new();
    };
    let rest = &der[at + oid.len()..];
    let len = rest.get(1).copied().unwrap_or(0) as usize;
    String::from_utf8_lossy(rest.get(2..2 + len).unwrap_or_default()).into_owned()
}
