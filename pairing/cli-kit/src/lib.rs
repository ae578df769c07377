//! Command-line plumbing both binaries share (`latchkey` and `latchkey-client`): errors
//! as one line whatever `RUST_BACKTRACE` says, and man pages and shell completions
//! generated from each binary's clap definitions. It carries clap, so neither the
//! protocol core nor the phone library depends on it.

pub mod assets;
pub mod exit;
