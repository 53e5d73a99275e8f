//! `vtool man`: the manual page (roff), on stdout or one page per command into a directory.

use std::path::PathBuf;

use anyhow::Context;

use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// Write vtool.1 and a vtool-COMMAND.1 page per command here (e.g.
    /// /usr/local/share/man/man1) instead of printing vtool.1.
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub fn run(a: Args, cli: clap::Command) -> anyhow::Result<Outcome> {
    match &a.dir {
        None => clap_mangen::Man::new(cli)
            .render(&mut std::io::stdout())
            .context("cannot write the manual page")?,
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cli, dir)
                .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
            eprintln!("wrote the manual pages into {}", dir.display());
        }
    }
    Ok(Outcome::Ok)
}
