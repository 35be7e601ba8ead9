//! TLS to the database, set in the URL the way libpq reads it:
//! `?sslmode=verify-full&sslrootcert=/etc/c2wall/db-ca.pem` (and
//! `sslcert`/`sslkey` to log in with a certificate). The driver knows only
//! `disable`, `prefer` and `require` and no file parameters, so these are
//! taken out of the URL here and the rest is handed on.

use std::path::PathBuf;

use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::CoordError;

/// libpq's `sslmode`, as far as c2wall takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plain connection (the default: a Unix socket or a loopback address).
    Disable,
    /// TLS if the server offers it, unverified.
    Prefer,
    /// TLS, unverified: stops eavesdropping, not impersonation.
    Require,
    /// TLS, the certificate checked against `sslrootcert` and its name
    /// against the host.
    VerifyFull,
}

/// The URL for the driver and the connector to use with it.
pub struct DbTls {
    pub url: String,
    pub mode: SslMode,
    pub connector: Option<MakeRustlsConnect>,
}

fn invalid(url: &str, message: String) -> CoordError {
    CoordError::StoreOpen {
        path: super::redact(url),
        message,
    }
}

/// Splits the TLS parameters out of `url` and builds the connector.
pub fn split(url: &str) -> Result<DbTls, CoordError> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let (mut mode, mut root, mut cert, mut key) = (None, None, None, None);
    let mut rest = Vec::new();
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "sslmode" => mode = Some(v.to_string()),
            "sslrootcert" => root = Some(PathBuf::from(v)),
            "sslcert" => cert = Some(PathBuf::from(v)),
            "sslkey" => key = Some(PathBuf::from(v)),
            _ => rest.push(kv),
        }
    }
    let mode = match mode.as_deref() {
        None | Some("disable") => SslMode::Disable,
        Some("prefer") => SslMode::Prefer,
        Some("require") => SslMode::Require,
        Some("verify-full") => SslMode::VerifyFull,
        Some("verify-ca") => {
            return Err(invalid(
                url,
                "sslmode=verify-ca is not offered: use verify-full (the certificate and the host name checked)"
                    .into(),
            ))
        }
        Some(other) => {
            return Err(invalid(
                url,
                format!("sslmode={other}: expected disable, prefer, require or verify-full"),
            ))
        }
    };
    if mode == SslMode::VerifyFull && root.is_none() {
        return Err(invalid(
            url,
            "sslmode=verify-full needs sslrootcert=PATH (the CA that signed the server's certificate)"
                .into(),
        ));
    }
    if mode == SslMode::Disable && (root.is_some() || cert.is_some() || key.is_some()) {
        return Err(invalid(
            url,
            "sslrootcert/sslcert/sslkey given but no TLS: add sslmode=verify-full".into(),
        ));
    }
    let client = match (&cert, &key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        (None, None) => None,
        _ => {
            return Err(invalid(
                url,
                "give both sslcert and sslkey, or neither".into(),
            ))
        }
    };
    let connector = match mode {
        SslMode::Disable => None,
        _ => {
            let ca = if mode == SslMode::VerifyFull {
                root.as_deref()
            } else {
                None
            };
            let cfg = c2wall_tls::database::database_client(ca, client)
                .map_err(|e| invalid(url, e.to_string()))?;
            Some(MakeRustlsConnect::new(cfg))
        }
    };
    rest.push(match mode {
        SslMode::Disable => "sslmode=disable",
        SslMode::Prefer => "sslmode=prefer",
        SslMode::Require | SslMode::VerifyFull => "sslmode=require",
    });
    Ok(DbTls {
        url: format!("{base}?{}", rest.join("&")),
        mode,
        connector,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_and_the_rest_handed_on() {
        let t = split("postgres://c2wall@db/c2wall?host=/run/pg&sslmode=disable").unwrap();
        assert_eq!(
            t.url,
            "postgres://c2wall@db/c2wall?host=/run/pg&sslmode=disable"
        );
        assert!(t.connector.is_none());
        let t = split("postgres://c2wall@db/c2wall?sslmode=require").unwrap();
        assert_eq!(
            (t.mode, t.url.as_str()),
            (
                SslMode::Require,
                "postgres://c2wall@db/c2wall?sslmode=require"
            )
        );
        assert!(t.connector.is_some());
        let t = split("postgres://c2wall@db/c2wall").unwrap();
        assert_eq!(t.mode, SslMode::Disable);
    }

    #[test]
    fn a_wrong_tls_setting_is_refused_naming_it() {
        let e = |u: &str| split(u).err().expect(u).to_string();
        assert!(e("postgres://u:pw@db/x?sslmode=verify-full").contains("needs sslrootcert"));
        assert!(!e("postgres://u:pw@db/x?sslmode=verify-full").contains("pw"));
        assert!(e("postgres://db/x?sslmode=verify-ca").contains("use verify-full"));
        assert!(e("postgres://db/x?sslmode=allow").contains("sslmode=allow"));
        assert!(e("postgres://db/x?sslrootcert=/x").contains("add sslmode=verify-full"));
        assert!(e("postgres://db/x?sslmode=require&sslcert=/x").contains("both sslcert and sslkey"));
        assert!(
            e("postgres://db/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
                .contains("/nonexistent/ca.pem")
        );
    }
}
