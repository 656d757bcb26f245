//! The shim's private descriptors never take a number the program would
//! get or choose: new descriptors are numbered as without the shim, and a
//! shell's `exec N>file` redirections (dup2 onto small numbers) work.

use conveyor_tests::{ok, Run, TempDir};

#[test]
fn descriptor_numbers_are_as_without_the_shim() {
    let script = r#"
import os
fds = [os.open(f"f{i}", os.O_RDWR | os.O_CREAT, 0o644) for i in range(5)]
for fd in fds:
    os.write(fd, b"x" * 100)
extra = os.open("/dev/null", os.O_RDONLY)
print("numbers", [fd - fds[0] for fd in fds], extra - fds[0])
os.dup2(fds[0], fds[-1] + 2)
os.write(fds[-1] + 2, b"y")
print("sizes", [os.fstat(fd).st_size for fd in fds])
"#;
    let (plain_dir, shim_dir) = (TempDir::new("fdn-plain"), TempDir::new("fdn-shim"));
    let plain = Run::new("python3", &["-c", script], plain_dir.path()).plain();
    ok(&plain, "python3 without the shim");
    let (out, counts) =
        Run::new("python3", &["-c", script], shim_dir.path()).shimmed(shim_dir.path());
    ok(&out, "python3 under the shim");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&plain.stdout)
    );
    assert!(
        counts.get("write").copied().unwrap_or(0) >= 5,
        "writes were not managed: {counts:?}"
    );
}

#[test]
fn shell_redirections_onto_small_numbers() {
    let script = "exec 3>a; echo one >&3; exec 4>b; echo two >&4; exec 5>>a; echo three >&5; \
                  exec 3>&- 4>&- 5>&-; cat a b";
    let (plain_dir, shim_dir) = (TempDir::new("sh-plain"), TempDir::new("sh-shim"));
    let plain = Run::new("bash", &["-c", script], plain_dir.path()).plain();
    ok(&plain, "bash without the shim");
    let (out, counts) = Run::new("bash", &["-c", script], shim_dir.path()).shimmed(shim_dir.path());
    ok(&out, "bash under the shim");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&plain.stdout)
    );
    assert_eq!(
        std::fs::read(shim_dir.path().join("a")).unwrap(),
        std::fs::read(plain_dir.path().join("a")).unwrap()
    );
    assert!(!counts.is_empty(), "nothing was managed: {counts:?}");
}
