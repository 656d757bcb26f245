//! A file deleted in the backing directory behind the mount's back, whose
//! inode number the backing filesystem then gives to a new file: while the
//! kernel still holds the deleted file's node, the new file must get a node
//! of its own, or it shares the deleted file's cached attributes and pages
//! (and the deleted file's node opens the new file).

use conveyor_slowfs::Mount;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Files created in the backing directory to get the deleted file's inode
/// number back. ext4 gives a new file the lowest free number of its
/// directory's group, usually the one just freed; the files that miss are
/// kept so that they fill any lower free numbers first.
const ATTEMPTS: usize = 2000;

/// A directory removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        let p = std::env::temp_dir().join(format!("conveyor-slowfs-ids-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_reused_inode_number_never_shares_the_deleted_files_node() {
    let dir = Dir::new();
    let (backing, mnt) = (dir.0.join("backing"), dir.0.join("mnt"));
    // Declared after `dir`: unmounted before the directory goes.
    let mount = Mount::start(
        Path::new(env!("CARGO_BIN_EXE_conveyor-slowfs")),
        &[],
        &backing,
        &mnt,
        &dir.0.join("stats"),
        None,
    )
    .unwrap_or_else(|e| panic!("{e} (.ci/run installs fuse3)"));

    // The old file, written and read through the mount: the kernel caches
    // its node, attributes and pages.
    let old_data: Vec<u8> = (0..5000u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(mnt.join("old"), &old_data).unwrap();
    assert!(std::fs::read(mnt.join("old")).unwrap() == old_data);
    let old_id = std::fs::metadata(mnt.join("old")).unwrap().ino();
    // An O_PATH descriptor keeps the kernel holding the node (it cannot
    // forget it) without an open request, which would keep the backing
    // file open and its inode number from being reused. Declared after
    // `mount`: closed before the unmount.
    let pin = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(mnt.join("old"))
        .unwrap();

    // Deleted behind the mount's back; new files until one gets its number.
    let old_ino = std::fs::metadata(backing.join("old")).unwrap().ino();
    std::fs::remove_file(backing.join("old")).unwrap();
    let new_data: Vec<u8> = (0..7000u32).map(|i| b'0' + (i % 10) as u8).collect();
    let mut reused = None;
    let mut last = String::new();
    for i in 0..ATTEMPTS {
        last = format!("new{i}");
        let p = backing.join(&last);
        std::fs::write(&p, &new_data).unwrap();
        if std::fs::metadata(&p).unwrap().ino() == old_ino {
            reused = Some(last.clone());
            break;
        }
        if i % 100 == 99 {
            // The kernel closes the old file (FUSE release) asynchronously;
            // until conveyor-slowfs has closed it, its number is not free.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    // Whether or not the number came back: the new file reads as itself.
    let name = reused.clone().unwrap_or(last);
    let via = mnt.join(&name);
    assert_eq!(
        std::fs::metadata(&via).unwrap().len(),
        new_data.len() as u64
    );
    assert!(
        std::fs::read(&via).unwrap() == new_data,
        "{name} through the mount is not the new file"
    );
    let Some(name) = reused else {
        eprintln!(
            "inode {old_ino} was not reused within {ATTEMPTS} files on this filesystem: \
             only the new file's contents checked (the node table's unit tests cover reuse)"
        );
        return;
    };

    // The new file has a node of its own, not the one the kernel holds for
    // the deleted file (which would carry that file's cached state).
    let new_id = std::fs::metadata(&via).unwrap().ino();
    assert_ne!(
        new_id, old_id,
        "{name} (backing inode {old_ino}, reused) got the deleted file's node id"
    );
    // And the deleted file's node is not the new file: its attributes are
    // not the new file's, and reopening it does not open the new file.
    if let Ok(m) = pin.metadata() {
        assert_ne!(
            m.len(),
            new_data.len() as u64,
            "the deleted file's node shows the new file's size"
        );
    }
    let reopened = std::fs::read(format!("/proc/self/fd/{}", pin.as_raw_fd()));
    assert!(
        reopened.map_or(true, |d| d != new_data),
        "reopening the deleted file's node opened {name}"
    );
    drop(pin);
    drop(mount);
}
