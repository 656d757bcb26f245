//! Shell scripts whose redirections put a managed file under descriptor 0,
//! 1 or 2, where builtins (`echo`, `printf`, `read`) write and read through
//! glibc's internal calls that no hook sees, and children inherit the
//! description. Each script runs with bash and dash (where the syntax is
//! theirs), without and with the shim, on local disk and on the slow
//! filesystem; the files must match byte for byte.

use conveyor_tests::twin::{differences, report, Twins, PLACES};
use std::path::Path;

/// Scripts both shells run.
const POSIX: &[(&str, &str)] = &[
    ("group", "{ echo start; /bin/echo child; echo end; } > f"),
    (
        "exec",
        "exec > log 2>&1; echo one; /bin/echo two; echo three >&2; ls missing-file; echo four",
    ),
    (
        "loop",
        "for i in 1 2 3; do echo \"b$i\"; /bin/echo \"c$i\"; done > f; echo after >> f; /bin/echo child >> f",
    ),
    (
        "function",
        "fn() { echo in; /bin/echo child; printf '%s\\n' out; }; fn > f; fn >> f",
    ),
    (
        "append",
        "echo first > f; { echo second; /bin/echo third; } >> f; cat f > copy",
    ),
    (
        "read-write-fd",
        "printf 'line1\\nline2\\nline3\\n' > f; exec 3<> f; read a <&3; echo \"got $a\"; echo X >&3; read b <&3; echo \"then $b\"; exec 3>&-; cat f",
    ),
    (
        "subshell",
        "( echo a; /bin/echo b; ( echo c; /bin/echo d ) ) > f",
    ),
    (
        "stdin",
        "printf 'x1\\nx2\\nx3\\nx4\\n' > in; { read l; echo \"$l\"; head -n 1; read l; echo \"$l\"; } < in > out",
    ),
];

/// Scripts only bash runs.
const BASH: &[(&str, &str)] = &[
    (
        "read-u",
        "printf 'line1\\nline2\\nline3\\n' > f; exec 3<> f; read -u 3 a; echo \"got $a\"; echo X >&3; read -u 3 b; echo \"then $b\"; exec 3>&-; cat f",
    ),
    (
        "xtrace-fd",
        "exec 5> trace; BASH_XTRACEFD=5; set -x; echo hi; /bin/true; : marker; set +x; exec 5>&-; cat trace",
    ),
    (
        "exec-fd-then-child",
        "exec 4> f; echo one >&4; /bin/echo two >&4; printf 'three\\n' >&4; exec 4>&-",
    ),
];

fn check(shell: &str, cases: &[&(&str, &str)]) {
    let mut failures = Vec::new();
    for place in PLACES {
        let t = Twins::new(place, "shell");
        for (name, script) in cases {
            let (plain, shim) = t.run(|_: &Path| {}, shell, &["-c", script], &[]);
            let what = format!("{shell} {name} ({place:?})");
            failures.extend(differences(&plain, &shim, false, &what));
        }
    }
    report(&failures);
}

#[test]
fn bash_redirections_keep_every_byte() {
    check("bash", &POSIX.iter().chain(BASH).collect::<Vec<_>>());
}

#[test]
fn dash_redirections_keep_every_byte() {
    check("dash", &POSIX.iter().collect::<Vec<_>>());
}
