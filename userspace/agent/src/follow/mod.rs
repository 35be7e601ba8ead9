//! Following DNS answers for listed names (issue 15, enforcement 2): the
//! names the program keys (`names`) and the addresses a response gives for
//! one of them (`answer`).

pub mod answer;
pub mod kernel;
pub mod metrics;
pub mod names;
pub mod table;
