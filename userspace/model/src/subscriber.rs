//! What subscribes to a coordinator's stream.

use c2wall_proto::v1 as pb;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubscriberKind {
    /// An edge node enforcing with XDP.
    Agent,
    /// Another coordinator (an ISP's) following this one.
    Downstream,
    /// `c2wall-bgp`, announcing the list to border routers.
    Bgp,
}

impl SubscriberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriberKind::Agent => "agent",
            SubscriberKind::Downstream => "downstream",
            SubscriberKind::Bgp => "bgp",
        }
    }

    /// From the wire; an unknown value (a newer subscriber) reads as an
    /// agent, the kind every older subscriber was.
    pub fn from_wire(v: i32) -> Self {
        match pb::SubscriberKind::try_from(v) {
            Ok(pb::SubscriberKind::Downstream) => SubscriberKind::Downstream,
            Ok(pb::SubscriberKind::Bgp) => SubscriberKind::Bgp,
            _ => SubscriberKind::Agent,
        }
    }
}

impl std::fmt::Display for SubscriberKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
