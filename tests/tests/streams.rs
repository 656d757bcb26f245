//! stdio and C++ streams mixed with descriptors on one managed file: glibc's
//! `fopen`, `fread`, `fwrite` and `fflush` (and libstdc++'s fstreams, which
//! open with `fopen`) reach the file through calls no hook sees, so the
//! file is handed to the kernel, its pending data written first, before a
//! stream can read or write it. Output compared with the plain run, on
//! local disk and on the slow filesystem.

use conveyor_tests::twin::{differences, report, Twins, PLACES};
use conveyor_tests::{ok, root, TempDir};
use std::path::Path;
use std::process::Command;

#[test]
fn c_and_cpp_streams_see_the_programs_writes() {
    let bins = TempDir::new("streams-bin");
    let c = bins.path().join("streams");
    conveyor_tests::compile_c(&root().join("tests/c/streams.c"), &c, &[]);
    let cc = bins.path().join("streams-cc");
    let out = Command::new("g++")
        .args(["-O2", "-o"])
        .arg(&cc)
        .arg(root().join("tests/c/streams.cc"))
        .output()
        .expect("run g++");
    ok(&out, "compiling streams.cc");
    let mut failures = Vec::new();
    for place in PLACES {
        let t = Twins::new(place, "streams");
        for bin in [&c, &cc] {
            let (plain, shim) = t.run(|_: &Path| {}, bin.to_str().expect("path"), &[], &[]);
            failures.extend(differences(
                &plain,
                &shim,
                false,
                &format!("{} ({place:?})", bin.display()),
            ));
        }
    }
    report(&failures);
}
