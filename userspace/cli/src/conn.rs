//! Where the coordinator is and how to reach it: flags, else environment
//! variables, else `~/.config/c2wall/cli.toml` or `/etc/c2wall/cli.toml`.

use std::path::PathBuf;

use c2wall_tls::ClientTls;

use crate::args::Cli;

pub const DEFAULT_URL: &str = "https://127.0.0.1:50051";

/// `cli.toml`: the same names as the flags.
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    coordinator: Option<String>,
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    insecure: bool,
}

fn file() -> Result<File, String> {
    let home = std::env::var("HOME").unwrap_or_default();
    for path in [
        format!("{home}/.config/c2wall/cli.toml"),
        "/etc/c2wall/cli.toml".into(),
    ] {
        if let Ok(text) = std::fs::read_to_string(&path) {
            return toml::from_str(&text).map_err(|e| format!("{path}: {e}"));
        }
    }
    Ok(File::default())
}

/// The coordinator URL and TLS settings.
pub fn resolve(cli: &Cli) -> Result<(String, ClientTls), String> {
    let f = file()?;
    let url = cli
        .coordinator
        .clone()
        .or(f.coordinator)
        .unwrap_or_else(|| DEFAULT_URL.into());
    let tls = ClientTls {
        ca: cli.tls_ca.clone().or(f.tls_ca),
        cert: cli.tls_cert.clone().or(f.tls_cert),
        key: cli.tls_key.clone().or(f.tls_key),
        insecure: cli.insecure || f.insecure,
    };
    Ok((url, tls))
}

/// An error and its causes on one line (tonic's transport error alone says
/// only "transport error").
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
