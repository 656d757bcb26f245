//! `conveyor generate`: man pages (`clap_mangen`) and shell completions
//! (`clap_complete`) rendered from the same definitions the parser uses,
//! so they cannot drift from what the command accepts.

use crate::cli;
use clap_complete::Shell;
use std::path::Path;
use std::process::ExitCode;

fn man(dir: &Path) -> std::io::Result<()> {
    clap_mangen::generate_to(cli::command(), dir)
}

fn completions(dir: &Path) -> std::io::Result<()> {
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = cli::command();
        let path = clap_complete::generate_to(shell, &mut cmd, "conveyor", dir)?;
        println!("{}", path.display());
    }
    Ok(())
}

/// Writes the man pages to `man_dir` and the completion scripts to
/// `completions_dir`, naming each file written; exit 1 when something
/// could not be written.
pub fn generate(man_dir: Option<&Path>, completions_dir: Option<&Path>) -> ExitCode {
    let mut ok = true;
    if let Some(d) = man_dir {
        match man(d) {
            Ok(()) => {
                let mut pages: Vec<_> = std::fs::read_dir(d)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.extension().is_some_and(|x| x == "1")
                            && p.file_name()
                                .is_some_and(|n| n.to_string_lossy().starts_with("conveyor"))
                    })
                    .collect();
                pages.sort();
                for p in pages {
                    println!("{}", p.display());
                }
            }
            Err(e) => {
                eprintln!("conveyor generate: man pages in {}: {e}", d.display());
                ok = false;
            }
        }
    }
    if let Some(d) = completions_dir {
        if let Err(e) = completions(d) {
            eprintln!("conveyor generate: completions in {}: {e}", d.display());
            ok = false;
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_SKIPPED)
    }
}
