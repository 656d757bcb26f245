//! Builds the shim (`conveyor-preload`, optimised) and puts a copy in
//! OUT_DIR, which the launcher embeds: `cargo install --path
//! crates/conveyor` then gives a working setup even though cargo installs
//! no libraries. The shim is built by a nested cargo with its own target
//! directory, so it never waits on the outer build's lock. If that build
//! fails, the launcher is built without an embedded copy (and says so when
//! it finds no shim elsewhere) rather than not at all.

use std::path::{Path, PathBuf};
use std::process::Command;

const SHIM: &str = "libconveyor_preload.so";

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let crates = manifest.parent().expect("crates/ directory").to_path_buf();
    for dir in ["conveyor-preload", "conveyor-engine"] {
        println!("cargo:rerun-if-changed={}", crates.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=CONVEYOR_NO_EMBED");
    let dest = out.join(SHIM);
    let built = if std::env::var_os("CONVEYOR_NO_EMBED").is_some() {
        Err("CONVEYOR_NO_EMBED is set".to_string())
    } else {
        build_shim(
            &crates.join("conveyor-preload/Cargo.toml"),
            &out.join("shim-target"),
        )
    };
    match built
        .and_then(|so| std::fs::copy(&so, &dest).map_err(|e| format!("copy {}: {e}", so.display())))
    {
        Ok(_) => {}
        Err(why) => {
            println!("cargo:warning=conveyor is built without an embedded shim: {why}");
            std::fs::write(&dest, b"").expect("write OUT_DIR");
        }
    }
}

fn build_shim(manifest: &Path, target: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target);
    // The outer build's settings for this package and its target would
    // leak into the nested build.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_CFG_")
            || k.starts_with("CARGO_FEATURE_")
            || matches!(
                k.as_str(),
                "CARGO_TARGET_DIR"
                    | "CARGO_BUILD_TARGET_DIR"
                    | "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "OUT_DIR"
                    | "TARGET"
                    | "HOST"
                    | "PROFILE"
                    | "OPT_LEVEL"
                    | "DEBUG"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
            )
        {
            cmd.env_remove(&k);
        }
    }
    // Line tables are for the build tree's copy; the embedded one is small.
    cmd.env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build of {} failed", manifest.display()));
    }
    let so = target.join("release").join(SHIM);
    if so.is_file() {
        Ok(so)
    } else {
        Err(format!("{} missing after the build", so.display()))
    }
}
