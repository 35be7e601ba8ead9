//! Hearing of other replicas (LISTEN on its own connection) and the lease
//! for once-only work (a session advisory lock: it dies with its holder's
//! connection, so another replica takes over within a poll).

use std::time::Duration;

use super::{PgStore, CHANNEL, LOCK_LEADER};
use crate::error::CoordError;
use crate::store::{Lease, Watch};
use postgres::fallible_iterator::FallibleIterator;

pub struct PgWatch {
    store: PgStore,
    listening: bool,
}

impl PgWatch {
    pub(crate) fn new(store: PgStore) -> Result<Self, CoordError> {
        Ok(PgWatch {
            store,
            listening: false,
        })
    }
}

impl Watch for PgWatch {
    fn wait(&mut self, timeout: Duration) -> Result<bool, CoordError> {
        if !self.listening
            || self
                .store
                .client
                .borrow()
                .as_ref()
                .is_none_or(|c| c.is_closed())
        {
            self.listening = false;
            self.store
                .run(|db| db.batch_execute(&format!("LISTEN {CHANNEL}")))?;
            self.listening = true;
            // Anything may have happened while nobody listened.
            return Ok(true);
        }
        let name = self.store.name.clone();
        let mut cell = self.store.client.borrow_mut();
        let db = cell.as_mut().expect("listening");
        let mut heard = false;
        let mut wait = timeout;
        let failed = loop {
            // After the first, take whatever else is already there, then return.
            match db.notifications().timeout_iter(wait).next() {
                Ok(Some(_)) => {
                    heard = true;
                    wait = Duration::ZERO;
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        if let Some(e) = failed {
            *cell = None;
            self.listening = false;
            return Err(super::unavailable(&name, &e));
        }
        Ok(heard)
    }
}

pub struct PgLease {
    store: PgStore,
    held: bool,
}

impl PgLease {
    pub(crate) fn new(store: PgStore) -> Self {
        PgLease { store, held: false }
    }
}

impl Lease for PgLease {
    fn held(&mut self) -> bool {
        // A live connection keeps the lock; the check also notices a lost
        // one (its lock went with it, and another replica may hold it now).
        let r = if self.held {
            self.store.run(|db| db.batch_execute("SELECT 1"))
        } else {
            self.store
                .run(|db| {
                    db.query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_LEADER])
                        .map(|r| r.get::<_, bool>(0))
                })
                .map(|got| {
                    if got {
                        tracing::info!(database = %self.store.name, "this replica now runs expiry, promotions and feed pulls");
                    }
                    self.held = got;
                })
        };
        if let Err(e) = r {
            if self.held {
                tracing::warn!(error = %e, "lost the lease for once-only work");
            }
            self.held = false;
        }
        self.held
    }
}

impl PgStore {
    pub(crate) fn lock_writes_now(&mut self) -> Result<u64, CoordError> {
        self.run(|db| {
            db.execute("SELECT pg_advisory_lock($1)", &[&super::LOCK_VERSION])?;
            db.query_one("SELECT coalesce(max(version), 0) FROM versions", &[])
                .map(|r| r.get::<_, i64>(0) as u64)
        })
    }

    pub(crate) fn unlock_writes_now(&mut self) -> Result<(), CoordError> {
        // A lost session took its lock with it: connecting again only to
        // unlock would hold the writer (up to the connect timeout) for nothing.
        if self.client.borrow().as_ref().is_none_or(|c| c.is_closed()) {
            return Ok(());
        }
        self.run(|db| {
            db.execute("SELECT pg_advisory_unlock($1)", &[&super::LOCK_VERSION])
                .map(|_| ())
        })
    }

    pub(crate) fn latest_now(&self) -> Result<u64, CoordError> {
        self.run(|db| {
            db.query_one("SELECT coalesce(max(version), 0) FROM versions", &[])
                .map(|r| r.get::<_, i64>(0) as u64)
        })
    }
}
