//! fork in a busy multithreaded program: four threads write managed files
//! continuously while the main thread forks 200 times; each child writes a
//! line to its own new managed file, reads it back and `_exit`s; the parent
//! waits for each. One test opens all writer files `O_CLOEXEC` (they keep
//! buffering in the parent); the others open two without, so the first
//! fork hands those descriptions to the kernel while their threads write
//! on (this lost records until the hand-over waited for writes in
//! progress and sent later ones to the kernel).
//!
//! Breaking it: a child deadlocking on a shim lock some writer thread held
//! at fork (hang: killed after 60 s), a child whose file or read-back is
//! wrong, or a writer file with lost, duplicated or misplaced records
//! (e.g. a wrong kernel offset when the inherited descriptions switch to
//! pass-through mid-stream).

use conveyor_tests::{compile_c, read_counts, shim, TempDir};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FORKLOOP_C: &str = r#"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *dir;
static atomic_int stop;
static long written[4];
static long max_records = 60000;
static int pace = 1;
static int inherited = 0; /* threads below 4 - inherited open without O_CLOEXEC */

/* Record r of thread t: 64 + (r % 5) * 300 bytes. */
static size_t record(int t, long r, char *buf) {
    size_t len = 64 + (size_t)(r % 5) * 300;
    memset(buf, 'a' + t, len);
    int n = snprintf(buf, 64, "t%d r%08ld ", t, r);
    buf[n] = ' ';
    buf[len - 1] = '\n';
    return len;
}

static int write_all(int fd, const char *p, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void *writer(void *arg) {
    int t = (int)(long)arg;
    char path[4096], buf[8192];
    snprintf(path, sizeof path, "%s/thread-%d", dir, t);
    int flags = O_WRONLY | O_CREAT | O_TRUNC | (t < 4 - inherited ? O_CLOEXEC : 0);
    int fd = open(path, flags, 0644);
    if (fd < 0) { perror("open thread file"); exit(2); }
    long r = 0;
    /* Until the forks are done (at least 100 records), at most 60,000
       (about 20 MB); paced after the first 5,000 so they span the forks. */
    while ((!atomic_load(&stop) || r < 100) && r < max_records) {
        size_t len = record(t, r, buf);
        if (write_all(fd, buf, len) != 0) { perror("thread write"); exit(2); }
        r++;
        if (pace && r > 5000 && r % 16 == 0) usleep(1000);
    }
    if (close(fd) != 0) { perror("thread close"); exit(2); }
    written[t] = r;
    return NULL;
}

int main(int argc, char **argv) {
    (void)argc;
    dir = argv[1];
    if (argc > 4) { max_records = atol(argv[2]); pace = atoi(argv[3]); inherited = atoi(argv[4]); }
    pthread_t th[4];
    for (long t = 0; t < 4; t++) pthread_create(&th[t], NULL, writer, (void *)t);
    int bad = 0;
    for (int i = 0; i < 200; i++) {
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 2; }
        if (pid == 0) {
            char path[4096], line[128], back[128];
            snprintf(path, sizeof path, "%s/child-%d", dir, i);
            int n = snprintf(line, sizeof line, "child %d says hello\n", i);
            int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
            if (fd < 0) _exit(10);
            if (write_all(fd, line, (size_t)n) != 0) _exit(11);
            if (close(fd) != 0) _exit(12);
            fd = open(path, O_RDONLY);
            if (fd < 0) _exit(13);
            ssize_t got = read(fd, back, sizeof back);
            if (got != n || memcmp(back, line, (size_t)n) != 0) _exit(14);
            close(fd);
            _exit(0);
        }
        int st;
        if (waitpid(pid, &st, 0) != pid) { perror("waitpid"); return 2; }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "child %d: status %d\n", i, st);
            bad++;
        }
    }
    atomic_store(&stop, 1);
    for (int t = 0; t < 4; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < 4; t++) printf("%ld\n", written[t]);
    return bad ? 1 : 0;
}
"#;

/// What thread `t` wrote as record `r` (mirrors `record` in the C code).
fn record(t: usize, r: u64) -> Vec<u8> {
    let len = 64 + (r % 5) as usize * 300;
    let mut b = vec![b'a' + t as u8; len];
    let head = format!("t{t} r{r:08} ");
    b[..head.len()].copy_from_slice(head.as_bytes());
    // snprintf's terminating NUL is overwritten with a space.
    b[head.len()] = b' ';
    b[len - 1] = b'\n';
    b
}

#[test]
fn fork_200_times_while_threads_write() {
    fork_loop(&["60000", "1", "0"]);
}

/// As above, paced, with threads 2 and 3 writing through descriptors the
/// children inherit (no O_CLOEXEC), which pass through after the first
/// fork. Failed in 2 of 3 runs before the hand-over waited for writes in
/// progress.
#[test]
fn fork_200_times_while_threads_write_inherited() {
    fork_loop(&["60000", "1", "2"]);
}

/// Threads 2 and 3 inherited (no O_CLOEXEC), without pacing: the writers
/// run flat out (up to 400,000 records, ~265 MB each) during the forks.
/// Before the fix the two inherited files came out short, with a run of
/// records missing mid-file (e.g. records 20190..20264 of thread 3 gone):
/// a write already inside the engine when the fork handed the description
/// to the kernel landed after writes the kernel had already placed.
#[test]
fn fork_200_times_while_threads_write_flat_out() {
    fork_loop(&["400000", "0", "2"]);
}

fn fork_loop(extra: &[&str]) {
    let dir = TempDir::new("forkloop");
    let src = dir.path().join("forkloop.c");
    std::fs::write(&src, FORKLOOP_C).unwrap();
    let bin = dir.path().join("forkloop");
    compile_c(&src, &bin, &[]);
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let counts = TempDir::new("counts");
    let so = dir.path().join("stdout.txt");
    let se = dir.path().join("stderr.txt");
    let mut child = Command::new(&bin)
        .arg(&data)
        .args(extra)
        .current_dir(dir.path())
        .env_remove("CONVEYOR_DISABLE")
        .env_remove("CONVEYOR_LOG")
        .env("LD_PRELOAD", shim())
        .env("CONVEYOR_MODE", "always")
        .env("CONVEYOR_PATHS", &data)
        .env("CONVEYOR_TEST_COUNTS", counts.path().join("counts-%p"))
        .env("CONVEYOR_LIVE_DIR", dir.path().join("live"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&so).unwrap())
        .stderr(std::fs::File::create(&se).unwrap())
        .spawn()
        .expect("start forkloop");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            let made = (0..200)
                .filter(|i| data.join(format!("child-{i}")).exists())
                .count();
            panic!(
                "forkloop hung under the shim ({made} children got as far as creating their file); \
                 stderr: {}",
                std::fs::read_to_string(&se).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&so).unwrap();
    let stderr = std::fs::read_to_string(&se).unwrap();
    assert!(
        status.success(),
        "forkloop failed: {status:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    for i in 0..200 {
        let got = std::fs::read(data.join(format!("child-{i}"))).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            format!("child {i} says hello\n"),
            "child {i}'s file"
        );
    }
    let written: Vec<u64> = stdout.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(written.len(), 4, "stdout: {stdout}");
    for (t, &n) in written.iter().enumerate() {
        assert!(n >= 100, "thread {t} wrote {n} records");
        let mut want = Vec::new();
        for r in 0..n {
            want.extend_from_slice(&record(t, r));
        }
        let got = std::fs::read(data.join(format!("thread-{t}"))).unwrap();
        assert_eq!(got.len(), want.len(), "thread {t}: file length");
        if got != want {
            let at = got.iter().zip(&want).position(|(a, b)| a != b).unwrap();
            panic!("thread {t}: file differs from byte {at}");
        }
    }
    let c = read_counts(counts.path());
    assert!(
        c.get("fork").copied().unwrap_or(0) >= 200,
        "forks not seen by the shim: {c:?}"
    );
    assert!(
        c.get("write").copied().unwrap_or(0) >= 100,
        "thread writes not managed: {c:?}"
    );
}
