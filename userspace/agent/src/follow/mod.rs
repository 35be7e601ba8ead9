//! Following DNS answers for listed names (issue 15, enforcement 2): the
//! addresses a response gives for a name the coordinator lists by domain.
//! Only the answer parsing exists so far; the XDP side that hands responses
//! to the agent and the entries it adds are not built yet.

pub mod answer;
