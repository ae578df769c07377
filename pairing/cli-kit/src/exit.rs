//! How every Latchkey binary ends: an error is one line on stderr (`NAME: what went wrong:
//! why`), never a stack trace, whatever `RUST_BACKTRACE` says; a panic is one line too.

use std::fmt::Display;
use std::process::ExitCode;

/// Makes a panic print one line (`NAME: internal error: ...`) instead of the default
/// report and backtrace. Call first thing in `main`.
pub fn quiet_panics(name: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        let what = info.payload_as_str().unwrap_or("unknown panic");
        eprintln!(
            "{name}: internal error: {}; please report it",
            one_line(what)
        );
    }));
}

/// Turns `main`'s result into an exit code, printing an error as one line. The
/// alternate form (`{:#}`) shows an `anyhow` error's causes after its context.
pub fn finish<E: Display>(name: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {}", one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Joins the lines of a message (a parser's snippet, say) into one.
pub fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_line_message_becomes_one_line() {
        assert_eq!(
            one_line("parsing config x\nTOML parse error at line 1\n  |\n1 | =\n"),
            "parsing config x TOML parse error at line 1 | 1 | ="
        );
    }
}
