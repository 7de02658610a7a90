//! The `aaa` command: check, test and explain policies (`aaa policy ...`); generate keys for,
//! verify, prove records of, retire and summarize audit logs (`aaa audit ...`).

/// `println!` that does not panic when standard output is closed (`aaa … | head`): what cannot
/// be written is dropped, and the command still ends with the exit code of its result.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that does not panic when standard output is closed (see [`out!`]).
macro_rules! out_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

mod audit;
mod policy;

use std::process::ExitCode;

const USAGE: &str = "usage: aaa <command>\n\n\
commands:\n  \
policy check FILE                 check a policy file (exit 0, or diagnostics and exit 1)\n  \
policy test FILE FIXTURES         run fixture cases against a policy, with a coverage report\n  \
policy explain FILE REQUEST.json  the decision for one request, and why\n  \
audit keygen --name N --out FILE  make an audit signing key; prints the verifier key\n  \
audit verify DIR --key KEY...     verify an audit log offline\n  \
audit prove DIR --seq SEQ --key KEY...     the inclusion proof of a record, with its checkpoint\n  \
audit retire DIR --before SEQ --to ARCHIVE  move a log's oldest segments to an archive\n  \
audit summary DIR                 decisions per principal, route and relay; forgery attempts";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version" | "-V") => {
            out!("aaa {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("policy") => policy::run(args.get(1..).unwrap_or_default()),
        Some("audit") => audit::main(args.get(1..).unwrap_or_default()),
        Some("--help" | "-h") => {
            out!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
