//! What a subscriber keeps of each entry it receives.

use c2wall_model::{
    wire::{encode_entry_field, entry_to_wire, WireError},
    Entry, Record,
};
use c2wall_proto::v1 as pb;

/// One entry of the synced set as a subscriber holds it. The digest covers
/// [`SetValue::entry`]; anything else a value keeps (provenance) travels
/// beside it.
pub trait SetValue: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static {
    /// Keeps nothing beyond the entry: the subscription asks for snapshots
    /// without provenance (`SubscribeRequest.entries_only`), a fraction of
    /// the bytes to build, send and decode.
    const ENTRIES_ONLY: bool;
    fn from_wire(e: &pb::Entry) -> Result<Self, WireError>;
    fn to_wire(&self) -> pb::Entry;
    fn entry(&self) -> &Entry;
    /// Appends [`SetValue::to_wire`] as field `field` of the message being
    /// encoded in `out` (the saved set's entries).
    fn encode_field(&self, field: u32, out: &mut Vec<u8>) {
        prost::encoding::message::encode(field, &self.to_wire(), out);
    }
}

/// The edge agent keeps what it enforces, nothing more (memory at a million
/// entries).
impl SetValue for Entry {
    const ENTRIES_ONLY: bool = true;
    fn from_wire(e: &pb::Entry) -> Result<Self, WireError> {
        Ok(Record::try_from(e)?.entry)
    }
    fn to_wire(&self) -> pb::Entry {
        entry_to_wire(self)
    }
    fn entry(&self) -> &Entry {
        self
    }
    fn encode_field(&self, field: u32, out: &mut Vec<u8>) {
        encode_entry_field(field, self, out);
    }
}

/// A downstream coordinator keeps each entry's provenance too.
impl SetValue for Record {
    const ENTRIES_ONLY: bool = false;
    fn from_wire(e: &pb::Entry) -> Result<Self, WireError> {
        Record::try_from(e)
    }
    fn to_wire(&self) -> pb::Entry {
        pb::Entry::from(self)
    }
    fn entry(&self) -> &Entry {
        &self.entry
    }
}
