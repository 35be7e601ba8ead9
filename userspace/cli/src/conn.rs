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
    coordinator: Option<c2wall_model::wire::Urls>,
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

/// The coordinator URLs (replicas, tried in order) and TLS settings.
pub fn resolve(cli: &Cli) -> Result<(Vec<String>, ClientTls), String> {
    let f = file()?;
    let mut urls = c2wall_model::wire::url_list(cli.coordinator.clone());
    if urls.is_empty() {
        urls = f.coordinator.map(|u| u.into_list()).unwrap_or_default();
    }
    if urls.is_empty() {
        urls.push(DEFAULT_URL.into());
    }
    let tls = ClientTls {
        ca: cli.tls_ca.clone().or(f.tls_ca),
        cert: cli.tls_cert.clone().or(f.tls_cert),
        key: cli.tls_key.clone().or(f.tls_key),
        insecure: cli.insecure || f.insecure,
    };
    Ok((urls, tls))
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

/// Connects to the first of `urls` that answers (the centre's replicas, in
/// the order given); `used` becomes its URL. All unreachable: each one's
/// reason.
pub async fn first_reachable(
    urls: &[String],
    tls: &ClientTls,
    used: &mut String,
) -> Result<tonic::transport::Channel, crate::Failure> {
    let mut why = Vec::new();
    for url in urls {
        if ClientTls::plaintext(url) && tls.insecure {
            eprintln!("c2wall: warning: --insecure: talking to {url} without TLS");
        }
        let endpoint = tls
            .endpoint(url)
            .map_err(|e| crate::Failure::Usage(anyhow::anyhow!("{e}")))?
            .connect_timeout(std::time::Duration::from_secs(5));
        match endpoint.connect().await {
            Ok(c) => {
                *used = url.clone();
                return Ok(c);
            }
            Err(e) if urls.len() == 1 => return Err(crate::Failure::Unreachable(chain(&e))),
            Err(e) => why.push(format!("{url}: {}", chain(&e))),
        }
    }
    Err(crate::Failure::Unreachable(format!(
        "none of the replicas answered ({})",
        why.join("; ")
    )))
}
