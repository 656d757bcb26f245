//! Compiles the few hooks that C must write: the variadic ones (`dprintf`),
//! whose `...` arguments only a C function can turn into a `va_list`
//! (defining C-variadic functions in Rust is not stable).

fn main() {
    println!("cargo:rerun-if-changed=src/hooks/variadic.c");
    cc::Build::new()
        .file("src/hooks/variadic.c")
        .flag_if_supported("-fvisibility=hidden")
        .compile("conveyor_variadic");
}
