//! BIRD 2 as the BGP speaker: its configuration (one static protocol per
//! peer and family feeding that peer's own tables, one BGP session per
//! peer with graceful restart), the `bird` process (started and supervised
//! here, killed with the exporter), reconfiguration and session states.
//!
//! BIRD outlives an exporter restart (see `watchdog`): the sessions stay up.
//! An exporter gone for good takes BIRD with it, abruptly (no Cease), so
//! peers keep the routes for the graceful-restart time (RFC 4724) and then
//! withdraw them. The kill switch withdraws on purpose (an empty list).

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use c2wall_model::{Family, Prefix};

use crate::config::{Peer, Settings};
use crate::error::BgpError;
use crate::routes::{Flow, PeerPlan};

/// BLACKHOLE (RFC 7999) and NO_EXPORT (RFC 1997).
const BLACKHOLE: (u16, u16) = (65535, 666);
const NO_EXPORT: (u16, u16) = (65535, 65281);

/// The longest a restarted exporter waits before announcing (see render).
pub const RECOVERY_WAIT_SECONDS: u32 = 5;

#[derive(Clone, Debug)]
pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn conf(&self) -> PathBuf {
        self.dir.join("bird.conf")
    }
    pub fn socket(&self) -> PathBuf {
        self.dir.join("bird.ctl")
    }
    fn include(&self, peer: &str, what: &str) -> PathBuf {
        self.dir.join(format!("{peer}-{what}.conf"))
    }
}

fn flow_line(f: &Flow) -> String {
    let v6 = f.prefix.family() == Family::V6;
    let mut s = format!(
        "route flow{} {{ {} {}; ",
        if v6 { 6 } else { 4 },
        if f.destination { "dst" } else { "src" },
        f.prefix
    );
    if let Some((proto, port)) = f.scope {
        let _ = write!(
            s,
            "{} = {proto}; {} = {port}; ",
            if v6 { "next header" } else { "proto" },
            if f.destination { "dport" } else { "sport" }
        );
    }
    s.push_str("};\n");
    s
}

fn routes_of(list: &[Prefix], family: Family) -> String {
    let mut s = String::new();
    for p in list.iter().filter(|p| p.family() == family) {
        let _ = writeln!(s, "route {p} blackhole;");
    }
    s
}

/// The main configuration: tables, static protocols including each peer's
/// route files, and the BGP sessions.
pub fn render(s: &Settings, paths: &Paths) -> String {
    let mut c = format!(
        "# Written by c2wall-bgp; edits are overwritten.\nrouter id {};\n\
         log stderr {{ info, remote, warning, error, auth, fatal, bug }};\n\
         graceful restart wait {wait};\nprotocol device {{}}\n",
        s.router_id,
        // After a restart (-R) BIRD announces once its sessions converged,
        // at the latest after this many seconds; peers hold the old routes
        // meanwhile.
        wait = RECOVERY_WAIT_SECONDS
    );
    let comm = |p: &Peer| {
        let mut f = String::new();
        for (a, b) in [BLACKHOLE, NO_EXPORT].into_iter().chain(p.community) {
            let _ = write!(f, "bgp_community.add(({a},{b})); ");
        }
        f
    };
    for p in &s.peers {
        let n = &p.name;
        let _ = write!(
            c,
            "ipv4 table t4_{n};\nipv6 table t6_{n};\nflow4 table f4_{n};\nflow6 table f6_{n};\n"
        );
        for (chan, table, what) in [
            ("ipv4", "t4", "rtbh4"),
            ("ipv6", "t6", "rtbh6"),
            ("flow4", "f4", "flow4"),
            ("flow6", "f6", "flow6"),
        ] {
            let _ = write!(
                c,
                "protocol static s_{what}_{n} {{\n  {chan} {{ table {table}_{n}; }};\ninclude \"{}\";\n}}\n",
                paths.include(n, what).display()
            );
        }
        let source = p
            .source_address
            .map(|a| format!(" {a}"))
            .unwrap_or_default();
        let password = p
            .password
            .as_ref()
            .map(|pw| format!("  password \"{}\";\n", pw.replace('"', "")))
            .unwrap_or_default();
        let discard = "bgp_ext_community.add((generic, 0x80060000, 0));";
        let _ = write!(
            c,
            "protocol bgp {n} {{\n  local{source} as {local};\n  neighbor {addr} as {asn};\n{password}\
             \x20 graceful restart on;\n  graceful restart time {gr};\n\
             \x20 ipv4 {{ table t4_{n}; import none; next hop address {nh4}; export filter {{ {c4}accept; }}; }};\n\
             \x20 ipv6 {{ table t6_{n}; import none; next hop address {nh6}; export filter {{ {c4}accept; }}; }};\n\
             \x20 flow4 {{ table f4_{n}; import none; export filter {{ {discard} accept; }}; }};\n\
             \x20 flow6 {{ table f6_{n}; import none; export filter {{ {discard} accept; }}; }};\n}}\n",
            local = s.local_asn,
            addr = p.address,
            asn = p.asn,
            gr = s.graceful_restart_time,
            nh4 = s.next_hop_v4,
            nh6 = s.next_hop_v6,
            c4 = comm(p),
        );
    }
    c
}

/// Writes each peer's route files (atomically: BIRD may read them at any
/// time).
pub fn write_routes(paths: &Paths, peers: &[Peer], plans: &[PeerPlan]) -> Result<(), BgpError> {
    for (p, plan) in peers.iter().zip(plans) {
        let flows = |f: Family| -> String {
            plan.flows
                .iter()
                .filter(|x| x.prefix.family() == f)
                .map(flow_line)
                .collect()
        };
        for (what, text) in [
            ("rtbh4", routes_of(&plan.rtbh, Family::V4)),
            ("rtbh6", routes_of(&plan.rtbh, Family::V6)),
            ("flow4", flows(Family::V4)),
            ("flow6", flows(Family::V6)),
        ] {
            write_atomic(&paths.include(&p.name, what), &text)?;
        }
    }
    Ok(())
}

pub fn write_atomic(path: &Path, text: &str) -> Result<(), BgpError> {
    let err = |source| BgpError::Write {
        path: path.into(),
        source,
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// `birdc -s SOCKET ARGS`: BIRD's answer.
pub fn birdc(birdc: &Path, paths: &Paths, args: &[&str]) -> Result<String, BgpError> {
    let out = Command::new(birdc)
        .arg("-s")
        .arg(paths.socket())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| BgpError::Spawn {
            program: birdc.into(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(BgpError::Bird(format!(
            "birdc {}: {}{}",
            args.join(" "),
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(text)
}

/// Has BIRD re-read its configuration (the changed route files).
pub fn reconfigure(bin: &Path, paths: &Paths) -> Result<(), BgpError> {
    let out = birdc(bin, paths, &["configure"])?;
    if out.contains("Reconfigured") || out.contains("Reconfiguration in progress") {
        Ok(())
    } else {
        Err(BgpError::Bird(format!(
            "configure: {}",
            out.lines().last().unwrap_or("").trim()
        )))
    }
}

/// Each peer's session state (`Established`, `Active`, ...), as BIRD shows
/// its protocols; a peer BIRD does not list is `down`.
pub fn sessions(bin: &Path, paths: &Paths, peers: &[Peer]) -> Vec<(String, String)> {
    let text = birdc(bin, paths, &["show", "protocols"]).unwrap_or_default();
    peers
        .iter()
        .map(|p| {
            let state = text
                .lines()
                .find_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.first() == Some(&p.name.as_str()) && f.get(1) == Some(&"BGP"))
                        .then(|| f.get(5).or(f.get(3)).unwrap_or(&"down").to_string())
                })
                .unwrap_or_else(|| "down".into());
            (p.name.clone(), state)
        })
        .collect()
}
