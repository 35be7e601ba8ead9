//! `/etc/c2wall/bgp.toml`: the coordinator to follow, this speaker's AS
//! and router id, and the peers (deploy/bgp.toml documents every key).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
};

use c2wall_model::{wire::Urls, Family, Mode, Prefix};
use serde::Deserialize;

use crate::error::BgpError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    coordinator: Urls,
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    trust_keys: Vec<String>,
    token_file: Option<PathBuf>,
    id: Option<String>,
    local_asn: u32,
    router_id: Ipv4Addr,
    state_dir: PathBuf,
    metrics_addr: Option<SocketAddr>,
    mode: Option<String>,
    bird: Option<PathBuf>,
    birdc: Option<PathBuf>,
    next_hop_v4: Option<Ipv4Addr>,
    next_hop_v6: Option<Ipv6Addr>,
    graceful_restart_time: Option<u32>,
    #[serde(default)]
    protected: Vec<String>,
    #[serde(default)]
    peer: Vec<PeerFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerFile {
    name: Option<String>,
    address: IpAddr,
    asn: u32,
    #[serde(default = "yes")]
    rtbh: bool,
    #[serde(default)]
    flowspec: bool,
    max_routes: Option<usize>,
    password: Option<String>,
    community: Option<String>,
    min_prefix_v4: Option<u8>,
    min_prefix_v6: Option<u8>,
    source_address: Option<IpAddr>,
}

fn yes() -> bool {
    true
}

/// One BGP peer (a route reflector or border router).
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    /// A label for metrics and BIRD (never the address).
    pub name: String,
    pub address: IpAddr,
    pub asn: u32,
    pub rtbh: bool,
    pub flowspec: bool,
    /// Routes plus rules this peer takes at most (its FIB limit).
    pub max_routes: usize,
    /// TCP MD5 (RFC 2385) password.
    pub password: Option<String>,
    /// Added to every RTBH route besides BLACKHOLE and NO_EXPORT.
    pub community: Option<(u16, u16)>,
    pub min_prefix_v4: u8,
    pub min_prefix_v6: u8,
    pub source_address: Option<IpAddr>,
}

impl Peer {
    pub fn floor(&self, f: Family) -> u8 {
        match f {
            Family::V4 => self.min_prefix_v4,
            Family::V6 => self.min_prefix_v6,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub coordinators: Vec<String>,
    pub tls: c2wall_tls::ClientTls,
    pub trust_keys: Vec<String>,
    pub token_file: Option<PathBuf>,
    pub id: String,
    pub local_asn: u32,
    pub router_id: Ipv4Addr,
    pub state_dir: PathBuf,
    pub metrics_addr: SocketAddr,
    /// The exporter's own mode; the centre's kill switch overrides it.
    pub mode: Mode,
    pub bird: PathBuf,
    pub birdc: PathBuf,
    pub next_hop_v4: Ipv4Addr,
    pub next_hop_v6: Ipv6Addr,
    pub graceful_restart_time: u32,
    pub protected: Vec<Prefix>,
    pub peers: Vec<Peer>,
}

pub const DEFAULT_METRICS: &str = "127.0.0.1:9467";

impl Settings {
    pub fn load(path: &Path) -> Result<Settings, BgpError> {
        let err = |message: String| BgpError::Config {
            path: path.into(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Self::parse(&text).map_err(err)
    }

    /// Checks every key; the message names it.
    pub fn parse(text: &str) -> Result<Settings, String> {
        let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let coordinators = f.coordinator.into_list();
        if coordinators.is_empty() {
            return Err("coordinator: give at least one URL".into());
        }
        let tls = c2wall_tls::ClientTls {
            ca: f.tls_ca,
            cert: f.tls_cert.clone(),
            key: f.tls_key,
            insecure: f.insecure,
        };
        for u in &coordinators {
            tls.endpoint(u)
                .map_err(|e| format!("coordinator `{u}`: {e}"))?;
        }
        c2wall_model::sign::Trust::from_hex(f.trust_keys.iter().map(String::as_str))
            .map_err(|e| format!("trust_keys: {e}"))?;
        let cert_name = match &f.tls_cert {
            None => None,
            Some(p) => c2wall_tls::files::identity_of(p)
                .map_err(|e| format!("tls_cert: {e}"))?
                .map(|i| i.name),
        };
        let id =
            f.id.or(cert_name)
                .ok_or("id: give the exporter's name (or a tls_cert that names it)")?;
        let mode = match f.mode.as_deref() {
            None => Mode::Enforce,
            Some(m) => Mode::parse(m).ok_or(format!("mode `{m}`: enforce, monitor or off"))?,
        };
        let protected = f
            .protected
            .iter()
            .map(|p| {
                p.parse::<Prefix>()
                    .map_err(|e| format!("protected `{p}`: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if f.peer.is_empty() {
            return Err("[[peer]]: give at least one".into());
        }
        let mut peers: Vec<Peer> = Vec::new();
        for (i, p) in f.peer.into_iter().enumerate() {
            let name = p.name.unwrap_or_else(|| format!("peer{i}"));
            let at = format!("[[peer]] {name}");
            if name.is_empty()
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                || !name.as_bytes()[0].is_ascii_alphabetic()
            {
                return Err(format!(
                    "{at}: name: letters, digits and `_`, starting with a letter"
                ));
            }
            if peers.iter().any(|q| q.name == name) {
                return Err(format!("{at}: two peers have this name"));
            }
            if !p.rtbh && !p.flowspec {
                return Err(format!("{at}: rtbh and flowspec are both off"));
            }
            let community = match &p.community {
                None => None,
                Some(c) => Some(
                    parse_community(c)
                        .ok_or(format!("{at}: community `{c}`: ASN:VALUE, each 0-65535"))?,
                ),
            };
            let (v4, v6) = (p.min_prefix_v4.unwrap_or(24), p.min_prefix_v6.unwrap_or(48));
            if v4 > 32 || v6 > 128 {
                return Err(format!(
                    "{at}: min_prefix_v4 is at most 32, min_prefix_v6 at most 128"
                ));
            }
            peers.push(Peer {
                name,
                address: p.address,
                asn: p.asn,
                rtbh: p.rtbh,
                flowspec: p.flowspec,
                max_routes: p.max_routes.unwrap_or(10_000),
                password: p.password,
                community,
                min_prefix_v4: v4,
                min_prefix_v6: v6,
                source_address: p.source_address,
            });
        }
        Ok(Settings {
            coordinators,
            tls,
            trust_keys: f.trust_keys,
            token_file: f.token_file,
            id,
            local_asn: f.local_asn,
            router_id: f.router_id,
            state_dir: f.state_dir,
            metrics_addr: f
                .metrics_addr
                .unwrap_or_else(|| DEFAULT_METRICS.parse().expect("literal")),
            mode,
            bird: f.bird.unwrap_or_else(|| "/usr/sbin/bird".into()),
            birdc: f.birdc.unwrap_or_else(|| "/usr/sbin/birdc".into()),
            // RFC 5737 TEST-NET-1 and RFC 6666's discard prefix: routers map
            // them to a null route (RFC 5635's discard next hop).
            next_hop_v4: f.next_hop_v4.unwrap_or(Ipv4Addr::new(192, 0, 2, 1)),
            next_hop_v6: f.next_hop_v6.unwrap_or("100::1".parse().expect("literal")),
            graceful_restart_time: f.graceful_restart_time.unwrap_or(120),
            protected,
            peers,
        })
    }
}

fn parse_community(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once(':')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "coordinator = \"http://127.0.0.1:1\"\ninsecure = true\nid = \"bgp-1\"\n\
        local_asn = 64512\nrouter_id = \"192.0.2.1\"\nstate_dir = \"/tmp/x\"\n";

    #[test]
    fn the_example_keys_parse_and_defaults_are_sane() {
        let s = Settings::parse(&format!(
            "{BASE}[[peer]]\naddress = \"192.0.2.2\"\nasn = 64512\nrtbh = true\nflowspec = true\n\
             max_routes = 100000\n"
        ))
        .unwrap();
        let p = &s.peers[0];
        assert_eq!((p.name.as_str(), p.max_routes), ("peer0", 100_000));
        assert_eq!((p.min_prefix_v4, p.min_prefix_v6), (24, 48));
        assert_eq!(s.next_hop_v4, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(s.mode, Mode::Enforce);
    }

    #[test]
    fn the_example_in_deploy_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/bgp.toml");
        let text = std::fs::read_to_string(path)
            .unwrap()
            .replace("https://coordinator.example:50051", "http://127.0.0.1:1")
            .replace("tls_ca = \"/etc/c2wall/pki/ca.crt\"", "insecure = true")
            .replace("tls_cert = \"/etc/c2wall/pki/bgp-1.crt\"", "id = \"bgp-1\"")
            .replace("tls_key = \"/etc/c2wall/pki/bgp-1.key\"", "");
        let s = Settings::parse(&text).unwrap();
        assert_eq!((s.local_asn, s.peers[0].name.as_str()), (64512, "rr1"));
        assert_eq!(s.peers[0].community, Some((64512, 666)));
        assert_eq!(s.peers[0].max_routes, 100_000);
        assert_eq!(s.protected.len(), 1);
    }

    #[test]
    fn bad_keys_are_refused_naming_them() {
        for (extra, needle) in [
            ("", "[[peer]]"),
            (
                "[[peer]]\naddress = \"192.0.2.2\"\nasn = 1\nrtbh = false\n",
                "both off",
            ),
            (
                "[[peer]]\naddress = \"192.0.2.2\"\nasn = 1\ncommunity = \"x\"\n",
                "community `x`",
            ),
            (
                "[[peer]]\nname = \"1a\"\naddress = \"192.0.2.2\"\nasn = 1\n",
                "name",
            ),
            (
                "protected = [\"300.1.1.1\"]\n[[peer]]\naddress = \"192.0.2.2\"\nasn = 1\n",
                "protected",
            ),
        ] {
            let e = Settings::parse(&format!("{BASE}{extra}")).unwrap_err();
            assert!(e.contains(needle), "{extra}: {e}");
        }
    }
}
