//! Shared pieces of the c2wall XDP programs: header parsing and counters.
#![no_std]

pub mod parse;
