//! TLS settings from PEM files, checked when they are loaded (so that a wrong
//! path, a key in place of a certificate or an expired certificate is named
//! at start-up rather than as a failed handshake later).

use std::path::{Path, PathBuf};

use rustls_pki_types::{
    pem::PemObject, CertificateDer, CertificateRevocationListDer, PrivateKeyDer,
};
use std::sync::Arc;

use rustls::{server::WebPkiClientVerifier, RootCertStore, ServerConfig};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::TlsError;

/// A PEM file's bytes (what tonic takes) and its certificates (what rustls
/// takes), read and parsed once.
pub(crate) struct Certs {
    pem: Vec<u8>,
    pub(crate) ders: Vec<CertificateDer<'static>>,
}

/// Reads `path` and checks it holds at least one certificate, none expired.
pub(crate) fn load_certs(path: &Path) -> Result<Certs, TlsError> {
    let pem = std::fs::read(path).map_err(|e| TlsError::io(path, e))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::file(path, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::file(
            path,
            "no certificate in it (expected `-----BEGIN CERTIFICATE-----`)",
        ));
    }
    for c in &certs {
        let (_, x) = x509_parser::parse_x509_certificate(c)
            .map_err(|e| TlsError::file(path, format!("unreadable certificate: {e}")))?;
        let v = x.validity();
        if !v.is_valid() {
            return Err(TlsError::file(
                path,
                format!(
                    "certificate `{}` is valid from {} to {}, not now",
                    x.subject(),
                    v.not_before,
                    v.not_after
                ),
            ));
        }
        if let Some(left) = v.time_to_expiration() {
            if left < time::Duration::days(14) {
                tracing::warn!(file = %path.display(), days_left = left.whole_days(), "certificate expires soon");
            }
        }
    }
    Ok(Certs { pem, ders: certs })
}

/// The first certificate in a PEM file, as DER.
pub(crate) fn first_cert(path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = std::fs::read(path).map_err(|e| TlsError::io(path, e))?;
    let der = CertificateDer::from_pem_slice(&pem)
        .map_err(|e| TlsError::file(path, format!("not a PEM certificate: {e}")))?;
    Ok(der.to_vec())
}

/// A key file's bytes and the key, checked to be there.
pub(crate) fn load_key(path: &Path) -> Result<(Vec<u8>, PrivateKeyDer<'static>), TlsError> {
    let pem = std::fs::read(path).map_err(|e| TlsError::io(path, e))?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        TlsError::file(
            path,
            format!("no private key in it (expected `-----BEGIN PRIVATE KEY-----`): {e}"),
        )
    })?;
    Ok((pem, key))
}

fn pair(
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
    what: &str,
) -> Result<Option<Identity>, TlsError> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some(Identity::from_pem(load_certs(c)?.pem, load_key(k)?.0))),
        (None, None) => Ok(None),
        _ => Err(TlsError::Invalid(format!(
            "{what}: give both --tls-cert and --tls-key, or neither"
        ))),
    }
}

/// How a client (agent, CLI) reaches the coordinator.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// The CA certificate that signed the coordinator's.
    pub ca: Option<PathBuf>,
    /// This client's certificate and key (its identity), if it has one.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Allows an `http://` URL: no encryption, no server authentication.
    pub insecure: bool,
}

impl ClientTls {
    /// True when `url` will be reached in plaintext.
    pub fn plaintext(url: &str) -> bool {
        url.starts_with("http://")
    }

    /// An endpoint for `url`, with TLS for `https://`. `http://` needs
    /// `insecure`; TLS files with an `http://` URL are refused rather than
    /// silently unused.
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, TlsError> {
        let files = self.ca.is_some() || self.cert.is_some();
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| TlsError::Invalid(format!("coordinator URL `{url}`: {e}")))?;
        if Self::plaintext(url) {
            if files {
                return Err(TlsError::Invalid(format!(
                    "`{url}` is plaintext but TLS files were given: use https://"
                )));
            }
            if !self.insecure {
                return Err(TlsError::Invalid(format!(
                    "`{url}` is plaintext: use https:// with --tls-ca (and --tls-cert/--tls-key), \
                     or pass --insecure to send the blocklist and tokens unencrypted"
                )));
            }
            return Ok(endpoint);
        }
        if !url.starts_with("https://") {
            return Err(TlsError::Invalid(format!(
                "coordinator URL `{url}`: expected https://HOST:PORT"
            )));
        }
        let Some(ca) = &self.ca else {
            return Err(TlsError::Invalid(format!(
                "`{url}` is https: give --tls-ca, the CA certificate that signed the coordinator's"
            )));
        };
        let mut cfg =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(load_certs(ca)?.pem));
        if let Some(id) = pair(&self.cert, &self.key, "client certificate")? {
            cfg = cfg.identity(id);
        }
        endpoint
            .tls_config(cfg)
            .map_err(|e| TlsError::Invalid(format!("TLS settings for `{url}`: {e}")))
    }
}

/// How the coordinator serves.
#[derive(Clone, Debug, Default)]
pub struct ServerTls {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The CA whose certificates identify callers; without it only bearer
    /// tokens do.
    pub client_ca: Option<PathBuf>,
    /// Certificates revoked by the CA (PEM CRL, `c2wall ca revoke`): their
    /// holders fail the handshake.
    pub crl: Option<PathBuf>,
    /// Serve plaintext (no `cert`/`key`).
    pub insecure: bool,
}

impl ServerTls {
    /// The rustls settings, or None for plaintext (which needs `insecure`).
    pub fn config(&self) -> Result<Option<Arc<ServerConfig>>, TlsError> {
        let (cert, key) =
            match (&self.cert, &self.key, self.insecure) {
                (Some(_), _, true) => {
                    return Err(TlsError::Invalid(
                        "--insecure and --tls-cert both given: pick one".into(),
                    ))
                }
                (None, None, false) => return Err(TlsError::Invalid(
                    "no TLS certificate: give --tls-cert and --tls-key (`c2wall ca issue --role \
                     coordinator` makes a pair), or --insecure to serve plaintext"
                        .into(),
                )),
                (None, None, true) => {
                    if self.client_ca.is_some() || self.crl.is_some() {
                        return Err(TlsError::Invalid(
                            "--tls-client-ca and --tls-crl need TLS: not with --insecure".into(),
                        ));
                    }
                    return Ok(None);
                }
                (Some(c), Some(k), false) => (c, k),
                _ => {
                    return Err(TlsError::Invalid(
                        "server certificate: give both --tls-cert and --tls-key".into(),
                    ))
                }
            };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Invalid(e.to_string()))?;
        let builder = match &self.client_ca {
            None if self.crl.is_some() => {
                return Err(TlsError::Invalid(
                    "--tls-crl revokes client certificates: it needs --tls-client-ca".into(),
                ))
            }
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in load_certs(ca)?.ders {
                    roots
                        .add(c)
                        .map_err(|e| TlsError::file(ca, format!("not a usable CA: {e}")))?;
                }
                // Optional: a caller with a bearer token and no certificate
                // still connects and the auth layer decides. A certificate
                // that is presented must verify, or the handshake fails.
                let mut verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .allow_unauthenticated();
                if let Some(path) = &self.crl {
                    let pem = std::fs::read(path).map_err(|e| TlsError::io(path, e))?;
                    let crls: Vec<CertificateRevocationListDer> =
                        CertificateRevocationListDer::pem_slice_iter(&pem)
                            .collect::<Result<_, _>>()
                            .map_err(|e| TlsError::file(path, format!("not a PEM CRL: {e}")))?;
                    if crls.is_empty() {
                        return Err(TlsError::file(
                            path,
                            "no CRL in it (expected `-----BEGIN X509 CRL-----`)",
                        ));
                    }
                    verifier = verifier.with_crls(crls);
                }
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsError::file(ca, e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut cfg = builder
            .with_single_cert(load_certs(cert)?.ders, load_key(key)?.1)
            .map_err(|e| TlsError::file(cert, format!("certificate and key: {e}")))?;
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(Arc::new(cfg)))
    }
}

/// The c2wall identity in a PEM certificate file (its first certificate).
pub fn identity_of(path: &Path) -> Result<Option<crate::CertIdentity>, TlsError> {
    let certs = load_certs(path)?;
    crate::CertIdentity::from_der(&certs.ders[0]).map_err(|e| TlsError::file(path, e))
}
