//! `c2wall ca`: a development CA for the demo, the tests and pilots.

use std::{net::IpAddr, path::PathBuf};

use anyhow::{anyhow, Result};
use c2wall_tls::{ca, identity::CertIdentity};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum CaCommand {
    /// Create a CA (DIR/ca.crt, DIR/ca.key mode 0600). Refuses to overwrite.
    Init {
        /// Directory to create the CA in (made if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Days the CA certificate is valid.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Issue DIR/NAME.crt and DIR/NAME.key signed by the CA in DIR.
    ///
    /// The certificate carries spiffe://c2wall/ROLE/NAME: the coordinator
    /// takes the caller's role and name (the audit log's actor) from it.
    /// `coordinator` is the server's certificate and needs the names agents
    /// reach it by (--dns, --ip; default localhost, 127.0.0.1, ::1).
    Issue {
        /// The CA's directory (`ca init`); the pair is written there.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// coordinator (the server), agent (an edge node), downstream
        /// (an ISP's coordinator following this one), reader, publisher or
        /// admin (operators and feed importers).
        #[arg(long, value_parser = ["coordinator", "agent", "downstream", "reader", "publisher", "admin"])]
        role: String,
        /// Letters, digits, `.`, `-`, `_`: the identity and the file name.
        #[arg(long)]
        name: String,
        /// A host name the coordinator is reached by (repeatable).
        #[arg(long, value_name = "HOST")]
        dns: Vec<String>,
        /// An address the coordinator is reached by (repeatable).
        #[arg(long, value_name = "ADDR")]
        ip: Vec<IpAddr>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Revoke DIR/NAME.crt: add it to DIR/crl.pem, the list the coordinator
    /// reads with --tls-crl (at start and on SIGHUP). Its holder then fails
    /// the TLS handshake.
    Revoke {
        /// The CA's directory (`ca init`).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The certificate to revoke: DIR/NAME.crt.
        #[arg(long)]
        name: String,
    },
}

pub fn run(cmd: CaCommand, json: bool) -> Result<()> {
    let issued = match cmd {
        CaCommand::Revoke { dir, name } => {
            let crl = ca::revoke(&dir, &name)?;
            if json {
                println!("{}", serde_json::json!({ "revoked": name, "crl": crl }));
            } else {
                println!("revoked {name}; revocation list: {}", crl.display());
                println!("reload the coordinator (SIGHUP) to refuse it on new connections");
            }
            return Ok(());
        }
        CaCommand::Init { dir, days } => ca::init(&dir, days)?,
        CaCommand::Issue {
            dir,
            role,
            name,
            dns,
            ip,
            days,
        } => {
            let identity = CertIdentity::new(&role, &name).map_err(|e| anyhow!("--{e}"))?;
            ca::issue(
                &dir,
                &ca::Request {
                    identity,
                    dns,
                    ips: ip,
                    days,
                },
            )?
        }
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "certificate": issued.cert,
                "key": issued.key,
                "names": issued.names,
            })
        );
    } else {
        println!("certificate: {}", issued.cert.display());
        println!("key:         {}", issued.key.display());
        for n in &issued.names {
            println!("name:        {n}");
        }
    }
    Ok(())
}
