//! The one owner of what the routers are told: the verified list (as the
//! sync client hands it over), the mode (the exporter's own, or the
//! centre's kill switch), each peer's plan; it writes BIRD's route files
//! and has BIRD reconfigure. `off` and `monitor` withdraw everything this
//! exporter announced; `enforce` announces the list again.

use std::sync::Arc;

use c2wall_model::{Entry, Mode};
use c2wall_proto::v1 as pb;

use crate::bird::{self, Paths};
use crate::config::Settings;
use crate::error::BgpError;
use crate::metrics::Metrics;
use crate::routes::{plan, PeerPlan};

pub struct Exporter {
    pub settings: Settings,
    pub paths: Paths,
    metrics: Arc<Metrics>,
    entries: Vec<Entry>,
    /// The centre's kill switch (None: the exporter's own mode).
    centre_mode: Option<Mode>,
    plans: Vec<PeerPlan>,
}

impl Exporter {
    pub fn new(settings: Settings, metrics: Arc<Metrics>) -> Exporter {
        let paths = Paths {
            dir: settings.state_dir.join("bird"),
        };
        Exporter {
            settings,
            paths,
            metrics,
            entries: Vec::new(),
            centre_mode: None,
            plans: Vec::new(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.centre_mode.unwrap_or(self.settings.mode)
    }

    /// Writes BIRD's main configuration and the routes of `entries` (the
    /// last verified list) before BIRD starts, so it announces them at once.
    pub fn prepare_with(&mut self, entries: Vec<Entry>) -> Result<(), BgpError> {
        self.entries = entries;
        std::fs::create_dir_all(&self.paths.dir).map_err(|source| BgpError::Write {
            path: self.paths.dir.clone(),
            source,
        })?;
        bird::write_atomic(
            &self.paths.conf(),
            &bird::render(&self.settings, &self.paths),
        )?;
        self.write()
    }

    fn write(&mut self) -> Result<(), BgpError> {
        let announce = self.mode() == Mode::Enforce;
        let none: &[Entry] = &[];
        let list = if announce { &self.entries[..] } else { none };
        self.plans = self
            .settings
            .peers
            .iter()
            .map(|p| plan(p, &self.settings.protected, list))
            .collect();
        for (p, plan) in self.settings.peers.iter().zip(&self.plans) {
            let over: Vec<String> = plan
                .refused
                .iter()
                .filter(|(_, r)| *r == crate::routes::Refused::Ceiling)
                .map(|(i, _)| i.to_string())
                .collect();
            if !over.is_empty() {
                tracing::warn!(peer = %p.name, max_routes = p.max_routes, left_out = over.len(),
                    first = %over.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                    "over the peer's route ceiling: the least specific entries (shortest prefix \
                     first, then the highest address) are not announced");
            }
        }
        bird::write_routes(&self.paths, &self.settings.peers, &self.plans)?;
        self.metrics.planned(&self.settings.peers, &self.plans);
        Ok(())
    }

    /// A verified version: plan, write, reconfigure.
    pub fn apply(&mut self, entries: Vec<Entry>) -> Result<(), BgpError> {
        self.entries = entries;
        self.refresh()
    }

    /// The centre's kill switch changed.
    pub fn set_centre_mode(&mut self, m: Option<Mode>) -> Result<(), BgpError> {
        if self.centre_mode != m {
            tracing::warn!(mode = ?m, "the centre's kill switch");
            self.centre_mode = m;
            self.refresh()?;
        }
        Ok(())
    }

    fn refresh(&mut self) -> Result<(), BgpError> {
        self.write()?;
        bird::reconfigure(&self.settings.birdc, &self.paths)?;
        self.metrics.updated();
        Ok(())
    }

    /// What the coordinator's `c2wall agents` shows of this exporter.
    pub fn status(&self) -> pb::AgentStatus {
        let sessions = bird::sessions(&self.settings.birdc, &self.paths, &self.settings.peers);
        self.metrics.sessions(&sessions);
        pb::AgentStatus {
            kind: pb::SubscriberKind::Bgp as i32,
            mode: self.mode().as_str().into(),
            entries: self.plans.iter().map(|p| p.routes() as u64).sum(),
            peers: sessions
                .into_iter()
                .map(|(n, s)| format!("{n} {s}"))
                .collect(),
            ..Default::default()
        }
    }
}
