//! TLS to PostgreSQL (`sslmode` in the store URL) against a real server that
//! refuses every TCP connection without TLS: `verify-full` connects and
//! works; a plain connection, an unknown CA and a wrong host name are each
//! refused with an error that says which.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use c2wall_coordinator::{
    core::{Coordinator, Origin, Published},
    store::Location,
};
use c2wall_model::Record;
use c2wall_tls::{ca, CertIdentity};
use common::pg::TempPg;

fn issue_server_cert(dir: &std::path::Path) -> ca::Issued {
    ca::init(dir, 2).unwrap();
    ca::issue(
        dir,
        &ca::Request {
            identity: CertIdentity::new("coordinator", "db").unwrap(),
            dns: vec![],
            ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            days: 2,
        },
    )
    .unwrap()
}

fn open_err(url: String) -> String {
    match Location::Postgres(url).open() {
        Ok(_) => panic!("opened"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn verify_full_reaches_a_tls_only_server_and_a_wrong_ca_name_or_no_tls_is_refused() {
    let pg = TempPg::start("tls");
    pg.database("c2wall_tls");
    let pki = pg.socket_dir().join("pki");
    let server = issue_server_cert(&pki);
    let port = pg.serve_tls(&server.cert, &server.key);
    let ca = pki.join(ca::CA_CERT);
    let base = |host: &str| format!("postgres://c2wall@{host}:{port}/c2wall_tls");

    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        base("127.0.0.1"),
        ca.display()
    );
    let c = Coordinator::open(Location::Postgres(url).open().unwrap(), 16).unwrap();
    let r = Record::try_from(&common::entry("192.0.2.7")).unwrap();
    let v = match c
        .publish(
            vec![r],
            vec![],
            &Origin::new("alice", "127.0.0.1:1"),
            "t",
            false,
        )
        .unwrap()
    {
        Published::Version(v) => v.version,
        Published::Held(h) => panic!("held: {}", h.summary),
    };
    assert_eq!(v, 1);
    // The server saw the version over TLS (its only way in over TCP).
    assert_eq!(
        pg.sql("c2wall_tls", "SELECT max(version) FROM versions")
            .unwrap(),
        "1"
    );

    // No TLS: the server's refusal, naming the place.
    let e = open_err(base("127.0.0.1"));
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(e.contains("no encryption") || e.contains("pg_hba"), "{e}");

    // Another CA: the certificate is not trusted.
    let other = pg.socket_dir().join("other");
    ca::init(&other, 2).unwrap();
    let e = open_err(format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        base("127.0.0.1"),
        other.join(ca::CA_CERT).display()
    ));
    assert!(e.to_lowercase().contains("certificate"), "{e}");

    // The certificate names 127.0.0.1, not localhost.
    let e = open_err(format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        base("localhost"),
        ca.display()
    ));
    assert!(e.to_lowercase().contains("certificate"), "{e}");

    // require: encrypted without checking the certificate, as libpq does.
    let url = format!("{}?sslmode=require", base("localhost"));
    assert!(Location::Postgres(url).open().is_ok());
}
