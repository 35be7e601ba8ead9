//! The store for several coordinator replicas: PostgreSQL. Each handle is
//! one connection (the writer and the reader each have their own, as with
//! SQLite); a lost connection is made again on the next call, and calls
//! while the database is away fail as unavailable, naming it.
//!
//! Versions are allocated inside the publishing transaction under an
//! advisory lock: the transaction checks that the version it writes follows
//! the latest one in the database, so two replicas never write the same
//! version and never leave a gap (the one that lost catches up and tries
//! again, see `Coordinator::retrying`). Every change other replicas must
//! see is announced with NOTIFY on [`CHANNEL`].

use std::time::Duration;

use std::cell::RefCell;

use postgres::{Client, Config, NoTls};

use super::AuditEvent;
use crate::error::CoordError;

mod guard;
mod log;
pub mod tls;
mod watch;

pub use watch::{PgLease, PgWatch};

/// The NOTIFY channel: payload `version`, `modes`, `protected` or `lineage`.
pub const CHANNEL: &str = "c2wall";

/// Advisory lock keys (one namespace for c2wall: the high half is "c2wa").
pub(crate) const LOCK_MIGRATE: i64 = 0x6332_7761_0000_0001;
pub(crate) const LOCK_VERSION: i64 = 0x6332_7761_0000_0002;
pub(crate) const LOCK_LEADER: i64 = 0x6332_7761_0000_0003;

/// Schema migrations, numbered; each is applied once, all pending ones in
/// one transaction.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/postgres/0002_rollout.sql"),
    ),
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Where the database is, for messages (never the password).
pub(crate) fn describe(cfg: &Config) -> String {
    let hosts: Vec<String> = cfg
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(h) => h.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}:{port}/{}",
        hosts.join(","),
        cfg.get_dbname().unwrap_or("")
    )
}

/// Whether `s` names a PostgreSQL database rather than a SQLite file.
pub fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

pub struct PgStore {
    cfg: Config,
    /// None after the connection was lost, until the next call makes it
    /// again. A cell: the store's read methods take `&self`, and a store
    /// handle is used by one thread at a time (it is Send, not Sync).
    client: RefCell<Option<Client>>,
    /// TLS to the database (`sslmode` in the URL), None for a plain one.
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// `host:port/db`, for messages.
    pub(crate) name: String,
}

impl PgStore {
    /// Connects, applies pending migrations and seeds a new database. An
    /// unreachable database is an error naming it and why, within
    /// `connect_timeout`, not a hang.
    pub fn open(url: &str) -> Result<Self, CoordError> {
        let tls = tls::split(url)?;
        let mut cfg: Config =
            tls.url
                .parse()
                .map_err(|e: postgres::Error| CoordError::StoreOpen {
                    path: redact(url),
                    message: e.to_string(),
                })?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(Duration::from_secs(5));
        }
        if cfg.get_application_name().is_none() {
            cfg.application_name("c2wall-coordinator");
        }
        let name = describe(&cfg);
        let store = PgStore {
            client: RefCell::new(None),
            tls: tls.connector,
            cfg,
            name,
        };
        store.connected().map_err(|e| CoordError::StoreOpen {
            path: store.name.clone(),
            message: e.to_string(),
        })?;
        store.migrate()?;
        Ok(store)
    }

    /// Makes the connection if there is none (or it was lost).
    pub(crate) fn connected(&self) -> Result<(), CoordError> {
        let mut c = self.client.borrow_mut();
        if c.as_ref().is_none_or(|c| c.is_closed()) {
            *c = None;
            let made = match &self.tls {
                Some(t) => self.cfg.connect(t.clone()),
                None => self.cfg.connect(NoTls),
            };
            *c = Some(made.map_err(|e| unavailable(&self.name, &e))?);
        }
        Ok(())
    }

    /// Runs `f` on the connection; a connection error drops it (the next
    /// call connects again) and is reported as unavailable.
    pub(crate) fn run<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, CoordError> {
        self.connected()?;
        let mut cell = self.client.borrow_mut();
        let db = cell.as_mut().expect("connected above");
        match f(db) {
            Ok(t) => Ok(t),
            Err(e) => {
                if db.is_closed() || e.is_closed() {
                    *cell = None;
                    return Err(unavailable(&self.name, &e));
                }
                Err(CoordError::Postgres(e))
            }
        }
    }

    /// Another connection to the same database.
    pub(crate) fn again(&self) -> Result<PgStore, CoordError> {
        let s = PgStore {
            cfg: self.cfg.clone(),
            client: RefCell::new(None),
            tls: self.tls.clone(),
            name: self.name.clone(),
        };
        s.connected()?;
        Ok(s)
    }

    fn migrate(&self) -> Result<(), CoordError> {
        let name = self.name.clone();
        let have = self.run(|db| {
            let mut tx = db.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_MIGRATE])?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS c2wall_schema (version INTEGER NOT NULL)",
            )?;
            let have: i32 = tx
                .query_one("SELECT coalesce(max(version), 0) FROM c2wall_schema", &[])?
                .get(0);
            if have > SCHEMA_VERSION {
                return Ok(have);
            }
            for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > have) {
                tx.batch_execute(sql)?;
                tx.execute("INSERT INTO c2wall_schema (version) VALUES ($1)", &[v])?;
            }
            // A new database gets its lineage and the protected defaults.
            let lineage = c2wall_model::sign::random32()[..16].to_vec();
            tx.execute(
                "INSERT INTO lineage (id, lineage) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                &[&lineage],
            )?;
            let seeded = tx.execute(
                "INSERT INTO meta (name, value) VALUES ('protected_seeded', 1)
                     ON CONFLICT (name) DO NOTHING",
                &[],
            )? == 1;
            if seeded {
                for (p, why) in crate::guards::DEFAULT_PROTECTED {
                    tx.execute(
                        "INSERT INTO protected (prefix, why) VALUES ($1, $2)
                         ON CONFLICT (prefix) DO NOTHING",
                        &[p, why],
                    )?;
                }
            }
            tx.commit()?;
            Ok(have)
        })?;
        if have > SCHEMA_VERSION {
            return Err(CoordError::StoreOpen {
                path: name,
                message: format!(
                    "the database schema is version {have}, newer than this binary's \
                     {SCHEMA_VERSION}: run the newer c2wall-coordinator (or restore a backup \
                     of the older schema)"
                ),
            });
        }
        Ok(())
    }
}

impl Drop for PgStore {
    /// The client closes its connection by blocking on its own runtime,
    /// which panics inside another runtime's task (a coordinator dropped by
    /// its server at shutdown): there it closes on a thread of its own.
    fn drop(&mut self) {
        if let Some(c) = self.client.get_mut().take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::Builder::new()
                    .name("c2wall-pg-close".into())
                    .spawn(move || drop(c));
            }
        }
    }
}

/// A connection failure as the API reports it.
pub(crate) fn unavailable(name: &str, e: &postgres::Error) -> CoordError {
    let why = std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_else(|| e.to_string());
    CoordError::Unavailable(format!("the database {name} is unreachable: {why}"))
}

/// A URL for messages: the password replaced.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn insert_audit(
    tx: &mut impl postgres::GenericClient,
    e: &AuditEvent,
) -> Result<(), postgres::Error> {
    tx.execute(
        "INSERT INTO audit (at, actor, peer, action, detail, reason) VALUES ($1, $2, $3, $4, $5, $6)",
        &[&e.at, &e.actor, &e.peer, &e.action, &e.detail, &e.reason],
    )?;
    Ok(())
}

fn notify(tx: &mut impl postgres::GenericClient, what: &str) -> Result<(), postgres::Error> {
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &what])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            super::redact("postgres://c2wall:s3cret@db1/c2wall"),
            "postgres://c2wall:***@db1/c2wall"
        );
        assert_eq!(
            super::redact("postgres://c2wall@db1/c2wall"),
            "postgres://c2wall@db1/c2wall"
        );
    }
}
