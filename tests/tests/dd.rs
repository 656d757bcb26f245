//! GNU dd under the shim: writes through a dup2'ed fd 1 and reads, in 4 KiB
//! and 1 MiB blocks, byte for byte as without it.

use conveyor_tests::{ok, pattern, Run, TempDir};

fn dd_case(bs: &str) {
    let dir = TempDir::new("dd");
    let src = dir.path().join("src.bin");
    std::fs::write(&src, pattern(1, 5 * 1024 * 1024 + 1234)).unwrap();
    let plain = Run::new(
        "dd",
        &[&format!("bs={bs}"), "if=src.bin", "of=plain.bin"],
        dir.path(),
    )
    .plain();
    ok(&plain, "dd without the shim");
    let (out, counts) = Run::new(
        "dd",
        &[&format!("bs={bs}"), "if=src.bin", "of=shim.bin"],
        dir.path(),
    )
    .shimmed(dir.path());
    ok(&out, "dd under the shim");
    let want = std::fs::read(dir.path().join("plain.bin")).unwrap();
    assert!(
        std::fs::read(dir.path().join("shim.bin")).unwrap() == want,
        "dd output differs"
    );
    // dd opened both files through the shim and wrote through fd 1.
    assert!(
        counts.get("write").copied().unwrap_or(0) > 0,
        "no managed write: {counts:?}"
    );
    assert!(
        counts.get("read").copied().unwrap_or(0) > 0,
        "no managed read: {counts:?}"
    );
    assert!(
        counts.contains_key("dup2"),
        "dd's dup2 was not followed: {counts:?}"
    );
}

#[test]
fn dd_4k() {
    dd_case("4k");
}

#[test]
fn dd_1m() {
    dd_case("1M");
}
