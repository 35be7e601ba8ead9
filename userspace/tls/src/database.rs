//! TLS for the coordinator's connection to its database (PostgreSQL), in
//! the terms of libpq's `sslmode`: `verify-full` checks the server's
//! certificate against a CA file and its name against the host; `require`
//! and `prefer` encrypt without checking who answers, as libpq does without
//! a root certificate (they stop eavesdropping, not impersonation).

use std::{path::Path, sync::Arc};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider},
    pki_types::{CertificateDer, ServerName, UnixTime},
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::files::{load_certs, load_key};
use crate::TlsError;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What the database's certificate is checked against: `Some(ca)` for
/// `verify-full`, `None` for an encrypted connection that checks nothing.
/// `client` is a certificate and key to log in with (`sslcert`, `sslkey`).
pub fn database_client(
    ca: Option<&Path>,
    client: Option<(&Path, &Path)>,
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid(format!("TLS to the database: {e}")))?;
    let builder = match ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in load_certs(ca)?.ders {
                roots
                    .add(c)
                    .map_err(|e| TlsError::file(ca, format!("not a usable CA certificate: {e}")))?;
            }
            builder.with_root_certificates(roots)
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider()))),
    };
    match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?.ders, load_key(key)?.1)
            .map_err(|e| TlsError::file(key, format!("does not go with {}: {e}", cert.display()))),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// Accepts any certificate, still checking the handshake's signatures (so
/// the session key is the server's, whoever it is).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
