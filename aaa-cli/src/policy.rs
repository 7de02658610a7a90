//! `aaa policy check|test|explain`.

use std::process::ExitCode;

use aaa_core::policy::{FixtureRequest, Fixtures, PolicySet};

pub(crate) const USAGE: &str = "\
usage: aaa policy check FILE
       aaa policy test FILE FIXTURES
       aaa policy explain FILE REQUEST.json   (REQUEST `-` reads standard input)

  check    load and check a policy file (TOML, or JSON if it ends in .json);
           prints the diagnostics and exits 1 if it is not valid
  test     run the fixture cases against the policy and print failures and coverage;
           exits 1 if a case fails
  explain  decide one request {principal, action, resource, context} and say why";

fn load(file: &str) -> Result<PolicySet, ExitCode> {
    PolicySet::from_file(file).map_err(|e| {
        eprint!("{}", e.render());
        eprintln!(
            "error: `{file}` is not a valid policy ({} problem{})",
            e.diagnostics().len(),
            if e.diagnostics().len() == 1 { "" } else { "s" }
        );
        ExitCode::FAILURE
    })
}

/// Runs `aaa policy ARGS`.
pub(crate) fn run(args: &[String]) -> ExitCode {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["check", file] => match load(file) {
            Ok(p) => {
                out!(
                    "ok: {file} ({} rules, version {})",
                    p.rule_ids().count(),
                    p.version()
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        ["test", file, fixtures] => {
            let policy = match load(file) {
                Ok(p) => p,
                Err(code) => return code,
            };
            let fixtures = match Fixtures::from_file(fixtures) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let report = fixtures.run(&policy);
            out_part!("{report}");
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        ["explain", file, request] => {
            let policy = match load(file) {
                Ok(p) => p,
                Err(code) => return code,
            };
            let text = if *request == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(request)
            };
            let text = match text {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: cannot read `{request}`: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let req: FixtureRequest = match serde_json::from_str(&text) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: `{request}` is not a valid request: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let e = policy.explain(
                &req.principal.to_principal(),
                &req.action,
                &req.resource,
                &req.context.to_context(),
            );
            out!("decision: {} ({:?})", e.decision.as_str(), e.reason);
            if !e.rules.is_empty() {
                out!("rules: {}", e.rules.join(", "));
            }
            for err in &e.errors {
                out!("error in rule `{}`: {}", err.rule, err.message);
            }
            if let Some(m) = &e.nearest_miss {
                out!("nearest miss: rule `{}`, failed: {}", m.rule, m.failed);
            }
            match serde_json::to_string_pretty(&e) {
                Ok(json) => out!("{json}"),
                Err(err) => eprintln!("error: {err}"),
            }
            ExitCode::SUCCESS
        }
        ["--help" | "-h"] | [] => {
            out!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
