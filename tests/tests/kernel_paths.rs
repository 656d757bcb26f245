//! Kernel-side copies of managed files with data still pending:
//! `copy_file_range`, `sendfile` (and `shutil.copyfile`, which uses it),
//! and `splice` through a pipe, at explicit offsets and at the file
//! offset, in both directions. Compared with the plain run, on local disk
//! and on the slow filesystem.

mod common;

use common::python;
use conveyor_tests::twin::{differences, report, Twins, PLACES};
use std::path::Path;

const PY: &str = r#"
import os, shutil
src = os.open("src", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
for i in range(3000):
    os.write(src, b"%06d abcdefghijklmnopqrstuvwxyz\n" % i)
dst = os.open("dst", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(dst, b"header\n")
os.lseek(src, 1000, os.SEEK_SET)
print("copy_file_range", os.copy_file_range(src, dst, 5000))
print("offsets", os.lseek(src, 0, os.SEEK_CUR), os.lseek(dst, 0, os.SEEK_CUR))
os.write(dst, b"after copy_file_range\n")
print("copy_file_range at", os.copy_file_range(src, dst, 3000, 20000, 100))
print("sendfile", os.sendfile(dst, src, 50000, 7000))
print("offsets", os.lseek(src, 0, os.SEEK_CUR), os.lseek(dst, 0, os.SEEK_CUR))
os.write(dst, b"after sendfile\n")
r, w = os.pipe()
print("splice in", os.splice(src, w, 4096))
print("splice out", os.splice(r, dst, 4096))
os.write(dst, b"after splice\n")
os.write(src, b"tail of src\n")
os.close(src)
os.close(dst)
shutil.copyfile("src", "copy")
with open("copy", "ab") as f:
    f.write(b"appended\n")
print(open("dst", "rb").read()[-40:])
"#;

#[test]
fn kernel_copies_see_pending_data_and_keep_offsets() {
    let mut failures = Vec::new();
    for place in PLACES {
        let t = Twins::new(place, "kcopy");
        let py = python().to_str().expect("python path");
        let (plain, shim) = t.run(|_: &Path| {}, py, &["-c", PY], &[]);
        failures.extend(differences(
            &plain,
            &shim,
            false,
            &format!("kernel copies ({place:?})"),
        ));
    }
    report(&failures);
}
