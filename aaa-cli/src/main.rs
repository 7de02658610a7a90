//! The `aaa` command.
//!
//! Subcommands arrive with the policy (`aaa policy ...`) and audit (`aaa audit ...`) work; until
//! then the command prints its usage and exits with status 2.

mod audit;

use std::process::ExitCode;

const USAGE: &str = "usage: aaa <command>\n\nno commands are available in this version yet";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version" | "-V") => {
            println!("aaa {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("audit") => audit::main(args.get(1..).unwrap_or_default()),
        Some("--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
