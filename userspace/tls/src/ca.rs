//! A development certificate authority: enough to run the demo, the tests
//! and a pilot with TLS on. A production deployment issues the same kind of
//! certificates (the identity URI in the SAN is all c2wall reads) from the
//! operator's own PKI.
//!
//! Layout of the CA directory: `ca.crt`, `ca.key` (0600), and a `NAME.crt`,
//! `NAME.key` (0600) pair per issued certificate.

use std::{
    io::Write,
    net::IpAddr,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

use crate::{identity::CertIdentity, TlsError};

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
/// The revocation list the coordinator is given (`--tls-crl`).
pub const CRL: &str = "crl.pem";
/// What has been revoked: `SERIAL-HEX NAME UNIX-SECONDS` lines, append-only;
/// the CRL is made from it.
pub const REVOKED: &str = "revoked.txt";

/// What to issue.
#[derive(Clone, Debug)]
pub struct Request {
    pub identity: CertIdentity,
    /// Host names the coordinator is reached by (coordinator role only).
    pub dns: Vec<String>,
    /// Addresses the coordinator is reached by (coordinator role only).
    pub ips: Vec<IpAddr>,
    pub days: u32,
}

/// Where an issued pair went.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Every subject alternative name, as written.
    pub names: Vec<String>,
}

fn validity(params: &mut CertificateParams, days: u32) -> Result<(), TlsError> {
    if days == 0 || days > 36_500 {
        return Err(TlsError::Invalid(format!(
            "--days {days}: between 1 and 36500"
        )));
    }
    let now = time::OffsetDateTime::now_utc();
    // An hour of slack for clocks a little behind the issuer's.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days as i64);
    let mut serial = [0u8; 16];
    rand::fill(&mut serial);
    serial[0] &= 0x7f; // a positive integer
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(())
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), TlsError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => TlsError::Exists {
                path: path.to_path_buf(),
            },
            _ => TlsError::io(path, e),
        })?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| TlsError::io(path, e))
}

/// Writes a key and a certificate, both or neither.
fn write_pair(cert: &Path, cert_pem: &str, key: &Path, key_pem: &str) -> Result<(), TlsError> {
    for p in [cert, key] {
        if p.exists() {
            return Err(TlsError::Exists {
                path: p.to_path_buf(),
            });
        }
    }
    write_new(key, key_pem, 0o600)?;
    if let Err(e) = write_new(cert, cert_pem, 0o644) {
        let _ = std::fs::remove_file(key);
        return Err(e);
    }
    Ok(())
}

fn issuer(dir: &Path) -> Result<Issuer<'static, KeyPair>, TlsError> {
    let read = |p: PathBuf| std::fs::read_to_string(&p).map_err(|e| TlsError::io(&p, e));
    let ca_pem = read(dir.join(CA_CERT))?;
    let ca_key = KeyPair::from_pem(&read(dir.join(CA_KEY))?)
        .map_err(|e| TlsError::file(&dir.join(CA_KEY), format!("not a usable key: {e}")))?;
    Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|e| {
        TlsError::file(
            &dir.join(CA_CERT),
            format!("not a usable CA certificate: {e}"),
        )
    })
}

/// Revokes `dir/NAME.crt`: records its serial in `dir/revoked.txt` and
/// writes `dir/crl.pem` listing every revoked certificate, signed by the CA.
/// Revoking twice changes nothing. Returns the CRL's path.
pub fn revoke(dir: &Path, name: &str) -> Result<PathBuf, TlsError> {
    crate::identity::check_name(name).map_err(TlsError::Invalid)?;
    let cert = dir.join(format!("{name}.crt"));
    let der = crate::files::first_cert(&cert)?;
    let (_, x) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| TlsError::file(&cert, format!("unreadable certificate: {e}")))?;
    let serial: String = x.raw_serial().iter().map(|b| format!("{b:02x}")).collect();
    let list = dir.join(REVOKED);
    let mut lines = match std::fs::read_to_string(&list) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(TlsError::io(&list, e)),
    };
    if !lines
        .lines()
        .any(|l| l.split(' ').next() == Some(serial.as_str()))
    {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let line = format!("{serial} {name} {now}\n");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&list)
            .map_err(|e| TlsError::io(&list, e))?;
        f.write_all(line.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| TlsError::io(&list, e))?;
        lines.push_str(&line);
    }
    let mut revoked = Vec::new();
    for (n, l) in lines.lines().enumerate() {
        let f: Vec<&str> = l.split(' ').collect();
        let bad = || {
            TlsError::file(
                &list,
                format!("line {}: expected `SERIAL NAME SECONDS`", n + 1),
            )
        };
        let [hex, _, at] = f.as_slice() else {
            return Err(bad());
        };
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("x"), 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| bad())?;
        let at = at.parse::<i64>().map_err(|_| bad())?;
        revoked.push(rcgen::RevokedCertParams {
            serial_number: SerialNumber::from_slice(&bytes),
            revocation_time: time::OffsetDateTime::from_unix_timestamp(at).map_err(|_| bad())?,
            reason_code: Some(rcgen::RevocationReason::KeyCompromise),
            invalidity_date: None,
        });
    }
    let now = time::OffsetDateTime::now_utc();
    let params = rcgen::CertificateRevocationListParams {
        this_update: now - time::Duration::hours(1),
        next_update: now + time::Duration::days(30),
        // Monotonic because the list only grows.
        crl_number: SerialNumber::from_slice(&(revoked.len() as u64).to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&issuer(dir)?)?;
    let path = dir.join(CRL);
    let tmp = dir.join(format!("{CRL}.tmp"));
    std::fs::write(&tmp, crl.pem()?).map_err(|e| TlsError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| TlsError::io(&path, e))?;
    Ok(path)
}

/// Creates `dir/ca.crt` and `dir/ca.key`; refuses to overwrite either.
pub fn init(dir: &Path, days: u32) -> Result<Issued, TlsError> {
    std::fs::create_dir_all(dir).map_err(|e| TlsError::io(dir, e))?;
    let mut params = CertificateParams::default();
    validity(&mut params, days)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "c2wall");
    dn.push(DnType::CommonName, "c2wall development CA");
    params.distinguished_name = dn;
    // Issues end-entity certificates only, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let (cp, kp) = (dir.join(CA_CERT), dir.join(CA_KEY));
    write_pair(&cp, &cert.pem(), &kp, &key.serialize_pem())?;
    Ok(Issued {
        cert: cp,
        key: kp,
        names: vec![],
    })
}

/// Issues `dir/NAME.crt` and `dir/NAME.key` signed by the CA in `dir`.
pub fn issue(dir: &Path, req: &Request) -> Result<Issued, TlsError> {
    let read = |p: PathBuf| std::fs::read_to_string(&p).map_err(|e| TlsError::io(&p, e));
    let ca_pem = read(dir.join(CA_CERT))?;
    let ca_key = KeyPair::from_pem(&read(dir.join(CA_KEY))?)
        .map_err(|e| TlsError::file(&dir.join(CA_KEY), format!("not a usable key: {e}")))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|e| {
        TlsError::file(
            &dir.join(CA_CERT),
            format!("not a usable CA certificate: {e}"),
        )
    })?;

    let id = &req.identity;
    let server = id.role == "coordinator";
    if !server && (!req.dns.is_empty() || !req.ips.is_empty()) {
        return Err(TlsError::Invalid(format!(
            "--dns/--ip name the coordinator's addresses; a `{}` certificate identifies a caller",
            id.role
        )));
    }
    let mut params = CertificateParams::default();
    validity(&mut params, req.days)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "c2wall");
    dn.push(DnType::CommonName, id.name.clone());
    params.distinguished_name = dn;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let ia5 = |s: String| {
        rcgen::string::Ia5String::try_from(s.clone())
            .map_err(|_| TlsError::Invalid(format!("`{s}` is not an ASCII name")))
    };
    let mut names = vec![id.to_string()];
    params.subject_alt_names = vec![SanType::URI(ia5(id.to_string())?)];
    if server {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let (mut dns, mut ips) = (req.dns.clone(), req.ips.clone());
        if dns.is_empty() && ips.is_empty() {
            dns.push("localhost".into());
            ips.extend([
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap(),
            ]);
        }
        for d in dns {
            names.push(format!("DNS:{d}"));
            params.subject_alt_names.push(SanType::DnsName(ia5(d)?));
        }
        for ip in ips {
            names.push(format!("IP:{ip}"));
            params.subject_alt_names.push(SanType::IpAddress(ip));
        }
    } else {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let (cp, kp) = (
        dir.join(format!("{}.crt", id.name)),
        dir.join(format!("{}.key", id.name)),
    );
    write_pair(&cp, &cert.pem(), &kp, &key.serialize_pem())?;
    Ok(Issued {
        cert: cp,
        key: kp,
        names,
    })
}
