use std::process::ExitCode;

use clap::Parser;
use movieverse_deploy::report::scrub;
use movieverse_deploy::{cli::Cli, run};

fn main() -> ExitCode {
    // clap prints usage errors itself and exits 2 (invalid input), like our own errors.
    let cli = Cli::parse();
    match run::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // An error may carry what an API echoed of a request: secrets are blanked.
            if std::env::var_os("GITHUB_ACTIONS").is_some_and(|v| v == "true")
                && let Some(annotations) = e.annotations()
            {
                print!("{}", scrub(&annotations));
            }
            eprintln!("{}", scrub(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}
