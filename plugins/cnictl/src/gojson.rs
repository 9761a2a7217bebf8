//! JSON text as Go's `encoding/json` writes a `map[string]interface{}`, so the bytes cnictl
//! hands to plugins and writes to the result cache are the bytes libcni would produce.
//!
//! libcni round-trips every plugin configuration through `map[string]interface{}` before it
//! is written to a plugin's stdin (`InjectConf`), and stores the cached result the same way.
//! That means, observed with cnitool 1.1.2 and checked by the tests of this module:
//! - object keys are sorted byte-wise, at every depth, and the output is compact;
//! - `<`, `>` and `&` are written `\u003c`, `\u003e`, `\u0026`, and U+2028/U+2029 are
//!   escaped (Go's HTML-safe default); other control characters use `\n`, `\r`, `\t`, `\b`,
//!   `\f` or `\u00XX`;
//! - every number went through a `float64`: `1.0` is written `1`, `1e21` `1e+21`, `1e-7`
//!   `1e-7`, and integers above 2^53 lose precision exactly as in Go.
//!
//! The one place where libcni's bytes differ from ours is the key order *inside* `prevResult`:
//! libcni injects a Go struct there, written in field order; cnictl writes sorted keys. JSON
//! objects are unordered, so no plugin can tell.
//!
//! Sorting is done here explicitly, so the output does not depend on serde_json's
//! `preserve_order` feature being off.

use serde_json::{Number, Value};

/// Compact Go-style encoding of `v`.
pub fn to_vec(v: &Value) -> Vec<u8> {
    to_string(v).into_bytes()
}

/// Compact Go-style encoding of `v`, as a string.
pub fn to_string(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v, None, 0);
    out
}

/// Go's `json.MarshalIndent(v, "", indent)` (cnitool prints results with four spaces).
pub fn to_string_indent(v: &Value, indent: &str) -> String {
    let mut out = String::new();
    write_value(&mut out, v, Some(indent), 0);
    out
}

fn newline(out: &mut String, indent: Option<&str>, depth: usize) {
    if let Some(ind) = indent {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(ind);
        }
    }
}

fn write_value(out: &mut String, v: &Value, indent: Option<&str>, depth: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, depth + 1);
                write_value(out, item, indent, depth + 1);
            }
            newline(out, indent, depth);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, depth + 1);
                write_str(out, k);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                if let Some(item) = map.get(k) {
                    write_value(out, item, indent, depth + 1);
                }
            }
            newline(out, indent, depth);
            out.push('}');
        }
    }
}

/// Go's `floatEncoder` for a `float64`: shortest round-trip digits, plain notation for
/// 1e-6 <= |f| < 1e21, exponent notation otherwise (`1e+21`, `1e-7`).
fn write_number(out: &mut String, n: &Number) {
    let Some(f) = n.as_f64() else {
        out.push_str(&n.to_string());
        return;
    };
    if !f.is_finite() {
        // Cannot come out of JSON text; keep serde's rendering.
        out.push_str(&n.to_string());
        return;
    }
    let abs = f.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        out.push_str(&format!("{f}"));
    } else {
        // Rust writes `1e21` / `1e-7`; Go writes `1e+21` / `1e-7`.
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mant, exp)) if !exp.starts_with('-') => {
                out.push_str(mant);
                out.push_str("e+");
                out.push_str(exp);
            }
            _ => out.push_str(&s),
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                let b = c as u32;
                out.push_str("\\u00");
                out.push(char::from(HEX[((b >> 4) & 0xf) as usize]));
                out.push(char::from(HEX[(b & 0xf) as usize]));
            }
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_at_every_depth_and_is_compact() {
        let v: Value =
            serde_json::from_str(r#"{"type":"x","b":{"z":1,"a":[{"y":true,"c":null}]},"a":"s"}"#)
                .unwrap();
        assert_eq!(
            to_string(&v),
            r#"{"a":"s","b":{"a":[{"c":null,"y":true}],"z":1},"type":"x"}"#
        );
    }

    #[test]
    fn numbers_are_written_as_go_float64() {
        // Observed in the stdin cnitool 1.1.2 sent for `"z":[1.5,2.0,1e21,1e-7]`.
        let v: Value =
            serde_json::from_str(r#"[1.5,2.0,1e21,1e-7,0,-0.5,8080,4294967295]"#).unwrap();
        assert_eq!(to_string(&v), "[1.5,2,1e+21,1e-7,0,-0.5,8080,4294967295]");
        // Integers above 2^53 lose precision, as they do in Go.
        let big: Value = serde_json::from_str("9007199254740993").unwrap();
        assert_eq!(to_string(&big), "9007199254740992");
        assert_eq!(to_string(&json!(0.000001)), "0.000001");
        assert_eq!(to_string(&json!(1.5e22)), "1.5e+22");
    }

    #[test]
    fn numbers_are_read_correctly_rounded_as_go_reads_them() {
        // Found by the cnictl_conflist fuzz target: without serde_json's float_roundtrip,
        // this number was read one unit in the last place off, so the bytes cnictl wrote
        // (…557e+22) differed from libcni's (Go reads and writes …555e+22).
        let v: Value = serde_json::from_str(r#"{"mtu":14677777777755555555550}"#).unwrap();
        assert_eq!(to_string(&v), r#"{"mtu":1.4677777777755555e+22}"#);
        let again: Value = serde_json::from_str(&to_string(&v)).unwrap();
        assert_eq!(to_string(&again), to_string(&v));
    }

    #[test]
    fn strings_are_html_escaped_like_go() {
        let v = json!({"html": "<&>", "ctl": "a\u{1}\n\t\"\\", "ls": "\u{2028}", "u": "é"});
        assert_eq!(
            to_string(&v),
            r#"{"ctl":"a\u0001\n\t\"\\","html":"\u003c\u0026\u003e","ls":"\u2028","u":"é"}"#
        );
    }

    #[test]
    fn indent_matches_go_marshal_indent() {
        let v =
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}], "dns": {}, "e": []});
        assert_eq!(
            to_string_indent(&v, "    "),
            "{\n    \"cniVersion\": \"1.0.0\",\n    \"dns\": {},\n    \"e\": [],\n    \"ips\": [\n        {\n            \"address\": \"10.0.0.2/24\"\n        }\n    ]\n}"
        );
    }
}
