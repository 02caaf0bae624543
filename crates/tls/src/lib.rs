//! TLS for serve's listeners, with gunicorn's flags: `--certfile`, `--keyfile`, `--ca-certs`,
//! `--cert-reqs`, `--ciphers` and `--tls-min-version`.
//!
//! The master reads and checks the files once ([`Tls::from_values`], at start and on every
//! reload, before the new generation starts) and hands the result to the workers it forks,
//! as it does the models' bytes: a worker never reads a file an operator (or Kubernetes'
//! Secret rotation) is replacing, and a broken certificate on HUP is refused while the old
//! one serves on. Errors name the flag, the file and the cause, and exit 1 at start.
//!
//! rustls with ring as its provider. ALPN offers `h2` then `http/1.1`; the worker's
//! connection driver then sees a cleartext stream, HTTP/1.1 or HTTP/2 (gRPC) alike. TLS 1.3
//! session tickets are on, with the ticket keys made once in the master, so that a client
//! resumes its session on whichever worker takes its next connection.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite};
use serve_settings::Values;
use serve_settings::kinds::{ClientCerts, TlsVersionName};

pub use rustls;

#[cfg(feature = "testing")]
pub mod testing;

/// A certificate serve presents, for the start log and `/metrics`.
#[derive(Clone, Debug)]
pub struct Certificate {
    /// The file it came from (`--certfile`).
    pub file: PathBuf,
    /// Its subject, as `CN=example.com, O=...`.
    pub subject: String,
    /// When it expires, in seconds since the epoch.
    pub not_after: i64,
    /// The same, as the certificate writes it (`Dec  8 00:00:00 2027 +00:00`).
    pub not_after_text: String,
}

/// What the workers terminate TLS with, read and checked.
pub struct Tls {
    config: Arc<ServerConfig>,
    certificate: Certificate,
    files: Vec<PathBuf>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("certificate", &self.certificate)
            .field("files", &self.files)
            .finish()
    }
}

impl Tls {
    /// Reads the TLS settings' files; `None` when `--certfile` is not given (cleartext).
    pub fn from_values(values: &Values) -> Result<Option<Tls>, String> {
        let (cert_file, key_file) = match (&values.certfile, &values.keyfile) {
            (None, None) => {
                let stray = [
                    (values.ca_certs.is_some(), "--ca-certs"),
                    (values.cert_reqs != ClientCerts::None, "--cert-reqs"),
                    (values.ciphers.is_some(), "--ciphers"),
                    (
                        values.tls_min_version != TlsVersionName::V1_2,
                        "--tls-min-version",
                    ),
                ];
                if let Some((_, flag)) = stray.iter().find(|(given, _)| *given) {
                    return Err(format!(
                        "{flag} applies to TLS, which --certfile and --keyfile turn on: give \
                         them, or drop {flag}"
                    ));
                }
                return Ok(None);
            }
            (Some(_), None) => {
                return Err(
                    "--certfile needs --keyfile (the certificate's private key, PEM)".into(),
                );
            }
            (None, Some(_)) => {
                return Err("--keyfile needs --certfile (the certificate chain, PEM)".into());
            }
            (Some(c), Some(k)) => (c, k),
        };
        let provider = provider(values.ciphers.as_deref(), values.tls_min_version)?;
        let chain = read_certificates(cert_file, "--certfile")?;
        let certificate = describe(&chain[0], cert_file)?;
        let key = read_key(key_file)?;
        let mut files = vec![cert_file.clone(), key_file.clone()];

        let versions: &[&rustls::SupportedProtocolVersion] = match values.tls_min_version {
            TlsVersionName::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersionName::V1_3 => &[&rustls::version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| {
                format!(
                    "--ciphers and --tls-min-version leave nothing to speak: {e}; name a suite \
                     of the version"
                )
            })?;
        let builder = match (values.cert_reqs, &values.ca_certs) {
            (ClientCerts::None, None) => builder.with_no_client_auth(),
            (ClientCerts::None, Some(_)) => {
                return Err(
                    "--ca-certs checks client certificates, which --cert-reqs 0 does \
                            not ask for: pass --cert-reqs 1 (checked when sent) or 2 \
                            (required), or drop --ca-certs"
                        .into(),
                );
            }
            (reqs, None) => {
                let n = if reqs == ClientCerts::Optional { 1 } else { 2 };
                return Err(format!(
                    "--cert-reqs {n} checks client certificates against --ca-certs: give the CA \
                     file (PEM)"
                ));
            }
            (reqs, Some(ca_file)) => {
                let mut roots = RootCertStore::empty();
                for ca in read_certificates(ca_file, "--ca-certs")? {
                    roots.add(ca).map_err(|e| {
                        format!(
                            "--ca-certs {}: a certificate is not a CA: {e}",
                            ca_file.display()
                        )
                    })?;
                }
                files.push(ca_file.clone());
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                let verifier = if reqs == ClientCerts::Optional {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| format!("--ca-certs {}: {e}", ca_file.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            format!(
                "--keyfile {} does not go with --certfile {} ({e}): give the key the \
                 certificate was issued for",
                key_file.display(),
                cert_file.display()
            )
        })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config.ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| format!("cannot make TLS session ticket keys: {e}"))?;
        Ok(Some(Tls {
            config: Arc::new(config),
            certificate,
            files,
        }))
    }

    /// The configuration a worker's acceptor uses.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }

    /// The server's certificate (the chain's first).
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The files read: a change to one of them is a reason to read them again.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

/// A client for `serve --probe` on the server's own TLS address: it accepts the certificate
/// of `--certfile` itself, or a chain to one of that file's certificates (an intermediate
/// there as the trust anchor), and checks the chain, not the name (the probe asks by
/// loopback address, which the certificate need not name). `None` without TLS.
pub fn probe_client(values: &Values) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    let Some(cert_file) = &values.certfile else {
        return Ok(None);
    };
    if values.cert_reqs == ClientCerts::Required {
        return Err(
            "the server requires client certificates (--cert-reqs 2), which the probe \
                    has none of: give --metrics-bind, whose address the probe asks in cleartext"
                .into(),
        );
    }
    let provider = provider(None, TlsVersionName::V1_2)?;
    let chain = read_certificates(cert_file, "--certfile")?;
    let leaf = chain[0].clone();
    let mut roots = RootCertStore::empty();
    for cert in chain {
        // Each certificate of the file anchors a chain: the server's ends at one of them.
        roots
            .add(cert)
            .map_err(|e| format!("--certfile {}: {e}", cert_file.display()))?;
    }
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| format!("--certfile {}: {e}", cert_file.display()))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChainOnly { inner, leaf }))
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

/// Accepts `leaf` itself, or checks a server's chain and signatures as webpki does, but not
/// the name it is for.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    leaf: CertificateDer<'static>,
}

impl rustls::client::danger::ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error};
        if end_entity.as_ref() == self.leaf.as_ref() {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        }
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// ring's provider, with only the suites `--ciphers` names (in its order).
fn provider(
    ciphers: Option<&[String]>,
    min: TlsVersionName,
) -> Result<Arc<CryptoProvider>, String> {
    // Deprecated since rustls 0.23.48 because ring has no post-quantum key exchange
    // (X25519MLKEM768, aws-lc-rs's). Chosen anyway: see the crate's Cargo.toml.
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    let known = |s: &SupportedCipherSuite| format!("{:?}", s.suite());
    if let Some(names) = ciphers {
        let mut chosen = Vec::new();
        for name in names {
            let found = provider
                .cipher_suites
                .iter()
                .find(|s| known(s).eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    let all: Vec<String> = provider.cipher_suites.iter().map(known).collect();
                    format!(
                        "--ciphers: {name:?} is not a cipher suite rustls knows; it knows {} \
                         (OpenSSL's names, as ECDHE-RSA-AES128-GCM-SHA256, are not read)",
                        all.join(", ")
                    )
                })?;
            chosen.push(*found);
        }
        if min == TlsVersionName::V1_3
            && !chosen
                .iter()
                .any(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
        {
            return Err(
                "--ciphers names no TLS 1.3 suite, and --tls-min-version 1.3 allows no other: \
                 add one (TLS13_AES_128_GCM_SHA256...)"
                    .into(),
            );
        }
        provider.cipher_suites = chosen;
    }
    Ok(Arc::new(provider))
}

fn read_certificates(file: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let text = std::fs::read(file)
        .map_err(|e| format!("{flag} {}: cannot read it: {e}", file.display()))?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{flag} {}: not PEM certificates: {e}", file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{flag} {}: no certificate in it (expected -----BEGIN CERTIFICATE-----)",
            file.display()
        ));
    }
    Ok(certs)
}

fn read_key(file: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let text = std::fs::read(file)
        .map_err(|e| format!("--keyfile {}: cannot read it: {e}", file.display()))?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| {
        format!(
            "--keyfile {}: no private key in it ({e}; expected -----BEGIN PRIVATE KEY-----, \
             RSA PRIVATE KEY or EC PRIVATE KEY)",
            file.display()
        )
    })
}

/// The certificate's subject and validity; an expired one (or one not valid yet) is refused.
fn describe(cert: &CertificateDer<'_>, file: &Path) -> Result<Certificate, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| {
        format!(
            "--certfile {}: the first certificate cannot be read: {e}",
            file.display()
        )
    })?;
    let subject = parsed.subject().to_string();
    let validity = parsed.validity();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let not_after = validity.not_after.timestamp();
    if now > not_after {
        return Err(format!(
            "--certfile {}: the certificate of {subject} expired on {}: renew it",
            file.display(),
            validity.not_after
        ));
    }
    if now < validity.not_before.timestamp() {
        return Err(format!(
            "--certfile {}: the certificate of {subject} is not valid before {} (is this \
             machine's clock right?)",
            file.display(),
            validity.not_before
        ));
    }
    Ok(Certificate {
        file: file.to_path_buf(),
        subject,
        not_after,
        not_after_text: validity.not_after.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use serve_settings::Table;

    fn values(f: impl FnOnce(&mut Table)) -> Values {
        let mut t = Table::default();
        f(&mut t);
        t.resolve().expect("the settings resolve")
    }

    fn with(pki: &testing::Pki, f: impl FnOnce(&mut Table)) -> Result<Option<Tls>, String> {
        Tls::from_values(&values(|t| {
            t.certfile = Some(pki.cert.display().to_string());
            t.keyfile = Some(pki.key.display().to_string());
            f(t);
        }))
    }

    #[test]
    fn a_certificate_and_its_key_make_a_server_that_offers_h2_then_http1() {
        let dir = tempfile::tempdir().unwrap();
        let pki = testing::make(dir.path(), "serve.test", 30);
        let tls = with(&pki, |_| {}).unwrap().expect("TLS on");
        assert_eq!(tls.certificate().subject, "CN=serve.test");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let left = tls.certificate().not_after - now;
        assert!((29 * 86400..=30 * 86400 + 60).contains(&left), "{left}");
        assert_eq!(
            tls.server_config().alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(tls.files(), [pki.cert.clone(), pki.key.clone()]);
        assert!(Tls::from_values(&values(|_| {})).unwrap().is_none());
    }

    #[test]
    fn every_refusal_names_the_flag_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let pki = testing::make(dir.path(), "serve.test", 30);
        let other = tempfile::tempdir().unwrap();
        let stranger = testing::make(other.path(), "other.test", 30);
        let expired_dir = tempfile::tempdir().unwrap();
        let expired = testing::make(expired_dir.path(), "old.test", -2);
        let err = |r: Result<Option<Tls>, String>| r.expect_err("refused");

        let e = err(with(&pki, |t| {
            t.keyfile = Some(stranger.key.display().to_string())
        }));
        assert!(e.contains("does not go with --certfile"), "{e}");
        let e = err(with(&expired, |_| {}));
        assert!(
            e.contains("CN=old.test expired on") && e.contains("renew it"),
            "{e}"
        );
        let e = err(with(&pki, |t| {
            t.keyfile = Some(pki.cert.display().to_string())
        }));
        assert!(e.contains("no private key in it"), "{e}");
        let e = err(with(&pki, |t| {
            t.certfile = Some(pki.key.display().to_string())
        }));
        assert!(e.contains("no certificate in it"), "{e}");
        let e = err(with(&pki, |t| t.certfile = Some("/nonexistent.pem".into())));
        assert!(
            e.starts_with("--certfile /nonexistent.pem: cannot read it"),
            "{e}"
        );
        let e = err(with(&pki, |t| {
            t.ciphers = Some("ECDHE-RSA-AES128-GCM-SHA256".into())
        }));
        assert!(
            e.contains("not a cipher suite rustls knows") && e.contains("TLS13_AES_128_GCM_SHA256"),
            "{e}"
        );
        let e = err(with(&pki, |t| {
            t.ciphers = Some("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into());
            t.tls_min_version = Some("1.3".into());
        }));
        assert!(e.contains("names no TLS 1.3 suite"), "{e}");
        let e = err(with(&pki, |t| t.cert_reqs = Some("2".into())));
        assert!(
            e.contains("--cert-reqs 2 checks client certificates against --ca-certs"),
            "{e}"
        );
        let e = err(Tls::from_values(&values(|t| {
            t.keyfile = Some(pki.key.display().to_string());
        })));
        assert!(e.starts_with("--keyfile needs --certfile"), "{e}");
        let e = err(Tls::from_values(&values(|t| {
            t.cert_reqs = Some("1".into())
        })));
        assert!(e.starts_with("--cert-reqs applies to TLS"), "{e}");
        assert!(
            with(&pki, |t| {
                t.ca_certs = Some(pki.ca.display().to_string());
                t.cert_reqs = Some("2".into());
                t.ciphers = Some("TLS13_AES_256_GCM_SHA384:TLS13_AES_128_GCM_SHA256".into());
            })
            .unwrap()
            .is_some()
        );
    }
}
