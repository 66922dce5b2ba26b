//! Records the code version for sweep documents and replay commands.
//!
//! Sets `STORMHOLD_SIM_COMMIT` for the crate to the git commit it is built from (with `-dirty`
//! when tracked files differ from it), or leaves it unset when there is no git or no checkout:
//! a container build from a copied tree has neither, and may pass the commit in as
//! `STORMHOLD_COMMIT` instead (the `deploy/Dockerfile` build argument of that name). Never
//! fails the build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The paths, from the workspace root, whose edits change what the simulator does.
const CODE_PATHS: [&str; 6] =
    ["src", "sim/src", "sim/build.rs", "sim/Cargo.toml", "Cargo.toml", "Cargo.lock"];

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git").current_dir(dir).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Files whose change means another commit or another dirty state: HEAD, the branch it points
/// to, packed refs and the index.
fn git_files(dir: &Path) -> Vec<PathBuf> {
    let mut names = vec!["HEAD".to_owned(), "index".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        names.push(branch);
    }
    names
        .iter()
        .filter_map(|name| git(dir, &["rev-parse", "--path-format=absolute", "--git-path", name]))
        .map(PathBuf::from)
        .filter(|path| path.exists())
        .collect()
}

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    println!("cargo:rerun-if-env-changed=STORMHOLD_COMMIT");
    // The dirty mark must follow edits of the simulator and the kernel, not only commits.
    for watched in CODE_PATHS {
        println!("cargo:rerun-if-changed={}", manifest.join("..").join(watched).display());
    }
    if let Ok(commit) = std::env::var("STORMHOLD_COMMIT")
        && !commit.trim().is_empty()
    {
        println!("cargo:rustc-env=STORMHOLD_SIM_COMMIT={}", commit.trim());
        return;
    }
    let Some(commit) = git(&manifest, &["rev-parse", "HEAD"]) else {
        return;
    };
    for file in git_files(&manifest) {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let clean = Command::new("git")
        .current_dir(manifest.join(".."))
        .args(["diff", "--quiet", "HEAD", "--"])
        .args(CODE_PATHS)
        .status()
        .is_ok_and(|status| status.success());
    let mark = if clean { "" } else { "-dirty" };
    println!("cargo:rustc-env=STORMHOLD_SIM_COMMIT={commit}{mark}");
}
