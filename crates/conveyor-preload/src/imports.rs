//! Which functions the program's executable imports, read once from the
//! dynamic symbol table of `/proc/self/exe`.
//!
//! A stream the shim makes for a managed file (`ops::stream`) is a glibc
//! cookie stream, which has no wide-character side: `fwprintf`, `fputwc`
//! and the other wide functions fail on it. A program whose executable
//! imports any of them keeps glibc's own streams (its files opened with
//! `fopen` pass through, as before streams were managed).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

/// glibc's wide-character stream functions (and their fortified and
/// `_unlocked` names): a program that calls one on a stream it opened
/// needs a stream with a wide side.
const WIDE: &[&str] = &[
    "fwide",
    "fwprintf",
    "vfwprintf",
    "__fwprintf_chk",
    "__vfwprintf_chk",
    "fputwc",
    "putwc",
    "fputwc_unlocked",
    "putwc_unlocked",
    "fputws",
    "fputws_unlocked",
    "fgetwc",
    "getwc",
    "fgetwc_unlocked",
    "getwc_unlocked",
    "fgetws",
    "fgetws_unlocked",
    "__fgetws_chk",
    "__fgetws_unlocked_chk",
    "ungetwc",
    "fwscanf",
    "vfwscanf",
    "__isoc99_fwscanf",
    "__isoc99_vfwscanf",
    "__isoc23_fwscanf",
    "__isoc23_vfwscanf",
];

/// True when the executable imports a wide-character stream function, or
/// its symbols cannot be read (then streams are left to glibc).
pub fn uses_wide_streams() -> bool {
    static WIDE_USED: OnceLock<bool> = OnceLock::new();
    *WIDE_USED.get_or_init(|| {
        undefined_symbols("/proc/self/exe").is_none_or(|names| {
            names
                .iter()
                .any(|n| WIDE.contains(&String::from_utf8_lossy(n).as_ref()))
        })
    })
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

fn read_at(f: &File, off: u64, len: usize) -> Option<Vec<u8>> {
    // Bounded: a dynamic symbol table is kilobytes, rarely megabytes.
    if len > 64 << 20 {
        return None;
    }
    let mut v = vec![0u8; len];
    f.read_exact_at(&mut v, off).ok()?;
    Some(v)
}

/// The names of the undefined (imported) symbols in the `.dynsym` of the
/// 64-bit little-endian ELF file at `path`; `None` if it is not one or
/// cannot be read.
fn undefined_symbols(path: &str) -> Option<Vec<Vec<u8>>> {
    let f = File::open(path).ok()?;
    let eh = read_at(&f, 0, 64)?;
    // "\x7fELF", 64-bit, little-endian.
    if eh.get(0..4)? != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return None;
    }
    let shoff = u64_at(&eh, 0x28)?;
    let shentsize = usize::from(u16_at(&eh, 0x3a)?);
    let shnum = usize::from(u16_at(&eh, 0x3c)?);
    if shentsize < 64 || shnum == 0 {
        return None;
    }
    let sh = read_at(&f, shoff, shentsize * shnum)?;
    let section = |i: usize| {
        let b = i * shentsize;
        Some((
            u32_at(&sh, b + 4)?,  // sh_type
            u64_at(&sh, b + 24)?, // sh_offset
            u64_at(&sh, b + 32)?, // sh_size
            u32_at(&sh, b + 40)?, // sh_link
            u64_at(&sh, b + 56)?, // sh_entsize
        ))
    };
    const SHT_DYNSYM: u32 = 11;
    let (_, off, size, link, entsize) =
        (0..shnum).filter_map(section).find(|s| s.0 == SHT_DYNSYM)?;
    let (_, stroff, strsize, _, _) = section(link as usize)?;
    let syms = read_at(&f, off, usize::try_from(size).ok()?)?;
    let strs = read_at(&f, stroff, usize::try_from(strsize).ok()?)?;
    let entsize = usize::try_from(entsize).ok().filter(|e| *e >= 24)?;
    let mut out = Vec::new();
    for s in syms.chunks_exact(entsize) {
        let name = u32_at(s, 0)? as usize;
        let shndx = u16_at(s, 6)?;
        if shndx != 0 || name == 0 {
            continue;
        }
        let rest = strs.get(name..)?;
        let end = rest.iter().position(|b| *b == 0)?;
        out.push(rest[..end].to_vec());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_imports_of_an_executable() {
        // The test binary imports glibc's write (through std).
        let names = undefined_symbols("/proc/self/exe").expect("an ELF file");
        assert!(
            names.iter().any(|n| n == b"write"),
            "no write among {} imports",
            names.len()
        );
        assert!(undefined_symbols("/proc/self/cmdline").is_none());
    }
}
