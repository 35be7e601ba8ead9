//! The development CA issues certificates whose identity the coordinator can
//! read, refuses to overwrite, and the loaders name what is wrong.

use std::path::PathBuf;

use c2wall_tls::{ca, identity::CertIdentity, ClientTls, ServerTls};
use rustls_pki_types::{pem::PemObject, CertificateDer};

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("c2wall-ca-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn request(role: &str, name: &str) -> ca::Request {
    ca::Request {
        identity: CertIdentity::new(role, name).unwrap(),
        dns: vec![],
        ips: vec![],
        days: 30,
    }
}

#[test]
fn issued_certificates_carry_their_identity_and_nothing_is_overwritten() {
    let d = dir("issue");
    ca::init(&d, 365).unwrap();
    assert!(matches!(
        ca::init(&d, 365),
        Err(c2wall_tls::TlsError::Exists { .. })
    ));
    let ca_before = std::fs::read(d.join("ca.crt")).unwrap();

    let agent = ca::issue(&d, &request("agent", "edge-1")).unwrap();
    let pem = std::fs::read(&agent.cert).unwrap();
    let der = CertificateDer::from_pem_slice(&pem).unwrap();
    assert_eq!(
        CertIdentity::from_der(&der).unwrap(),
        Some(CertIdentity::new("agent", "edge-1").unwrap())
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&agent.key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "private keys are readable by their owner only");
    // Issuing the same name again is refused and leaves the pair alone.
    assert!(matches!(
        ca::issue(&d, &request("admin", "edge-1")),
        Err(c2wall_tls::TlsError::Exists { .. })
    ));
    assert_eq!(std::fs::read(&agent.cert).unwrap(), pem);
    assert_eq!(std::fs::read(d.join("ca.crt")).unwrap(), ca_before);

    // The coordinator's certificate names where it is reached.
    let mut r = request("coordinator", "coord");
    r.ips = vec!["10.9.0.1".parse().unwrap()];
    let coord = ca::issue(&d, &r).unwrap();
    assert_eq!(
        coord.names,
        vec!["spiffe://c2wall/coordinator/coord", "IP:10.9.0.1"]
    );
    // Addresses belong on server certificates only.
    let mut r = request("publisher", "feeds");
    r.dns = vec!["example.net".into()];
    let e = ca::issue(&d, &r).unwrap_err().to_string();
    assert!(e.contains("--dns/--ip"), "{e}");
    // Server settings load from the pair.
    let server = ServerTls {
        cert: Some(coord.cert.clone()),
        key: Some(coord.key.clone()),
        client_ca: Some(d.join("ca.crt")),
        crl: None,
        insecure: false,
    };
    assert!(server.config().unwrap().is_some());
    // Revoking writes a CRL the server settings load; twice is once.
    let crl = ca::revoke(&d, "edge-1").unwrap();
    ca::revoke(&d, "edge-1").unwrap();
    let listed = std::fs::read_to_string(d.join("revoked.txt")).unwrap();
    assert_eq!(listed.lines().count(), 1, "{listed}");
    let with_crl = ServerTls {
        crl: Some(crl.clone()),
        ..server.clone()
    };
    assert!(with_crl.config().unwrap().is_some());
    let e = ca::revoke(&d, "nobody").unwrap_err().to_string();
    assert!(e.contains("nobody.crt"), "{e}");
    let bad = ServerTls {
        crl: Some(d.join("ca.crt")),
        ..server.clone()
    };
    let e = bad.config().unwrap_err().to_string();
    assert!(e.contains("no CRL"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn client_and_server_settings_name_what_is_wrong() {
    let d = dir("errors");
    ca::init(&d, 365).unwrap();
    let err = |t: &ClientTls, url: &str| t.endpoint(url).unwrap_err().to_string();
    let none = ClientTls::default();
    assert!(err(&none, "http://10.0.0.1:50051").contains("--insecure"));
    assert!(err(&none, "https://10.0.0.1:50051").contains("--tls-ca"));
    let insecure = ClientTls {
        insecure: true,
        ..Default::default()
    };
    assert!(insecure.endpoint("http://10.0.0.1:50051").is_ok());
    let with_ca = ClientTls {
        ca: Some(d.join("ca.crt")),
        ..Default::default()
    };
    assert!(err(&with_ca, "http://10.0.0.1:50051").contains("use https://"));
    assert!(with_ca.endpoint("https://10.0.0.1:50051").is_ok());
    // A key given as the CA certificate: the file is named.
    let wrong = ClientTls {
        ca: Some(d.join("ca.key")),
        ..Default::default()
    };
    let e = err(&wrong, "https://10.0.0.1:50051");
    assert!(e.contains("ca.key") && e.contains("no certificate"), "{e}");
    let missing = ClientTls {
        ca: Some(d.join("nope.crt")),
        ..Default::default()
    };
    assert!(err(&missing, "https://h:1").contains("nope.crt"));
    let half = ClientTls {
        ca: Some(d.join("ca.crt")),
        cert: Some(d.join("ca.crt")),
        ..Default::default()
    };
    assert!(err(&half, "https://h:1").contains("both --tls-cert and --tls-key"));

    let e = ServerTls::default().config().unwrap_err().to_string();
    assert!(e.contains("--tls-cert") && e.contains("--insecure"), "{e}");
    let plain = ServerTls {
        insecure: true,
        ..Default::default()
    };
    assert!(plain.config().unwrap().is_none());
    // A CRL or client CA is never silently ignored by a plaintext server.
    let plain_crl = ServerTls {
        crl: Some(d.join("crl.pem")),
        ..plain.clone()
    };
    let e = plain_crl.config().unwrap_err().to_string();
    assert!(e.contains("--tls-crl") && e.contains("--insecure"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}
