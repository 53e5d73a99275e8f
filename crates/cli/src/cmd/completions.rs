//! `vtool completions SHELL`: a completion script for bash, zsh or fish on stdout.

use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// e.g. `vtool completions bash > /etc/bash_completion.d/vtool`.
    shell: clap_complete::Shell,
}

pub fn run(a: Args, mut cli: clap::Command) -> anyhow::Result<Outcome> {
    clap_complete::generate(a.shell, &mut cli, "vtool", &mut std::io::stdout());
    Ok(Outcome::Ok)
}
