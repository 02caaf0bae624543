//! Certificates made at test time: a CA, a server certificate for `localhost` and
//! `127.0.0.1` that it signed, and a client certificate it signed, written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// The files of a test PKI.
#[derive(Clone, Debug)]
pub struct Pki {
    /// The CA's certificate (what clients trust, and `--ca-certs`).
    pub ca: PathBuf,
    /// The server's certificate chain (`--certfile`).
    pub cert: PathBuf,
    /// The server's key (`--keyfile`).
    pub key: PathBuf,
    /// A client certificate the CA signed, and its key (`--cert-reqs`).
    pub client_cert: PathBuf,
    /// The client certificate's key.
    pub client_key: PathBuf,
    /// The CA's PEM, for a client's roots.
    pub ca_pem: String,
}

/// Makes a PKI in `dir`, the server's certificate valid from yesterday for `days` days
/// (negative: already expired), its common name `cn`.
pub fn make(dir: &Path, cn: &str, days: i64) -> Pki {
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "serve test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).expect("the CA");

    let now = time_now();
    let leaf = |name: &str, purpose: ExtendedKeyUsagePurpose, days: i64| {
        let key = KeyPair::generate().expect("a key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![purpose];
        params.not_before = now - rcgen_days(1);
        params.not_after = if days >= 0 {
            now + rcgen_days(days)
        } else {
            now - rcgen_days(-days)
        };
        if days < 0 {
            params.not_before = now - rcgen_days(-days + 30);
        }
        let cert = params.signed_by(&key, &ca, &ca_key).expect("a certificate");
        (cert.pem(), key.serialize_pem())
    };
    let (server_pem, server_key) = leaf(cn, ExtendedKeyUsagePurpose::ServerAuth, days);
    let (client_pem, client_key) =
        leaf("serve test client", ExtendedKeyUsagePurpose::ClientAuth, 30);
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write a PEM file");
        p
    };
    Pki {
        ca: write("ca.pem", &ca.pem()),
        cert: write("cert.pem", &server_pem),
        key: write("key.pem", &server_key),
        client_cert: write("client.pem", &client_pem),
        client_key: write("client-key.pem", &client_key),
        ca_pem: ca.pem(),
    }
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn rcgen_days(n: i64) -> time::Duration {
    time::Duration::days(n)
}
