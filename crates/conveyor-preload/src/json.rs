//! A small JSON writer for the shim's two documents (the stats report and
//! the live file): each field is written with its name beside its value,
//! into a `String`, with no allocation beyond it and no dependency (the
//! shim formats inside hooks and at exit, where less is safer).

use std::fmt::Write;

/// Appends `s` as a JSON string.
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// An object being written.
pub struct Obj<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> Obj<'a> {
    /// Opens an object at the end of `out`.
    pub fn new(out: &'a mut String) -> Obj<'a> {
        out.push('{');
        Obj { out, empty: true }
    }

    fn key(&mut self, k: &str) -> &mut String {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        string(self.out, k);
        self.out.push(':');
        self.out
    }

    /// `"k":v` for an integer.
    pub fn int(&mut self, k: &str, v: impl Into<i128>) -> &mut Self {
        let v = v.into();
        let _ = write!(self.key(k), "{v}");
        self
    }

    /// `"k":v` for a number with `decimals` decimals.
    pub fn float(&mut self, k: &str, v: f64, decimals: usize) -> &mut Self {
        let v = if v.is_finite() { v } else { 0.0 };
        let _ = write!(self.key(k), "{v:.decimals$}");
        self
    }

    /// `"k":true` or `false`.
    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        let _ = write!(self.key(k), "{v}");
        self
    }

    /// `"k":"v"`.
    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        let out = self.key(k);
        string(out, v);
        self
    }

    /// `"k":` followed by what `f` writes (an object or array).
    pub fn raw(&mut self, k: &str, f: impl FnOnce(&mut String)) -> &mut Self {
        f(self.key(k));
        self
    }

    /// Closes the object.
    pub fn end(&mut self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> String {
        let mut out = String::new();
        string(&mut out, s);
        out
    }

    #[test]
    fn strings_are_escaped_as_json_requires() {
        assert_eq!(j("plain"), r#""plain""#);
        assert_eq!(j(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(j(r"C:\dir"), r#""C:\\dir""#);
        assert_eq!(j("a\nb\tc\u{1}"), r#""a\u000ab\u0009c\u0001""#);
        assert_eq!(j("größe ✓"), "\"größe ✓\"");
    }

    #[test]
    fn fields_are_written_name_beside_value() {
        let mut out = String::new();
        let mut o = Obj::new(&mut out);
        o.int("a", 1u64)
            .int("b", -2i32)
            .float("c", 0.5, 2)
            .float("nan", f64::NAN, 1)
            .bool("d", true)
            .str("e", "x\"y")
            .raw("f", |s| s.push_str("[1,2]"));
        o.end();
        assert_eq!(
            out,
            r#"{"a":1,"b":-2,"c":0.50,"nan":0.0,"d":true,"e":"x\"y","f":[1,2]}"#
        );
        let mut empty = String::new();
        Obj::new(&mut empty).end();
        assert_eq!(empty, "{}");
    }
}
