//! The `latchkey` command line's subcommand groups, one file each; `main.rs` parses and
//! dispatches.

pub mod quarantine;
pub mod remote;
