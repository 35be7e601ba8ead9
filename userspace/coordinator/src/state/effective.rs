//! Reading the effective set: what agents enforce, as entries alone or as
//! the records that supply them (with their provenance).

use c2wall_model::{Entry, Identity, Record};

use super::{stored::Effective, State};

impl State {
    /// Identities agents enforce, in order.
    pub fn listed_identities(&self) -> impl Iterator<Item = &Identity> {
        self.effective.keys()
    }

    /// The effective record of `ident`: the record that supplies its action,
    /// with the union of directions.
    pub fn effective(&self, ident: &Identity) -> Option<Record> {
        self.effective
            .get(ident)
            .map(|e| self.materialise(ident, e))
    }

    /// The effective records after the first `skip`, in identity order.
    pub fn effective_records(&self, skip: usize) -> impl Iterator<Item = Record> + '_ {
        let rest = self.effective.iter().skip(skip);
        rest.map(|(i, e)| self.materialise(i, e))
    }

    /// The effective entries after the first `skip`, in identity order:
    /// what [`State::effective_records`] gives without the provenance (no
    /// look-up of the supplying record).
    pub fn effective_entries(&self, skip: usize) -> impl Iterator<Item = Entry> + '_ {
        let rest = self.effective.iter().skip(skip);
        rest.map(|(i, e)| e.entry(i))
    }

    fn materialise(&self, ident: &Identity, e: &Effective) -> Record {
        let supplier = self.records.get(&(ident.clone(), e.source.clone()));
        let mut r = match supplier {
            Some(s) => s.record(ident, &e.source),
            // Applied records and effective entries move together (records
            // first), so the supplier is always stored; were it not, the
            // entry itself is still what agents must enforce.
            None => Record {
                entry: e.entry(ident),
                source: e.source.to_string(),
                category: String::new(),
                reference: String::new(),
                confidence: 0,
                valid_from: 0,
                valid_until: None,
                created_by: String::new(),
                created_at: 0,
                promote_at: None,
                chain: Vec::new(),
            },
        };
        r.entry = e.entry(ident);
        r
    }
}
