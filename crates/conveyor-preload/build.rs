//! Compiles the few pieces that C must write: the variadic hooks
//! (`dprintf`), whose `...` arguments only a C function can turn into a
//! `va_list` (defining C-variadic functions in Rust is not stable), and the
//! cookie functions of managed streams (`ops/stream.c`), which set a field
//! of glibc's `FILE` that only its C header names.

fn main() {
    println!("cargo:rerun-if-changed=src/hooks/variadic.c");
    println!("cargo:rerun-if-changed=src/ops/stream.c");
    cc::Build::new()
        .file("src/hooks/variadic.c")
        .file("src/ops/stream.c")
        .flag_if_supported("-fvisibility=hidden")
        .compile("conveyor_variadic");
}
