//! Manifests: files of one or more documents (YAML separated by `---`, or JSON objects one
//! after another; a `kind: List` document stands for its `items`), decoded strictly into
//! [`Object`]s.
//!
//! Every problem names the file, the document (1-based, counting every document of the
//! file) and the field path (`spec.ingress[0].from[0].podSelectr`):
//! ```text
//! app.yaml: document 3 (NetworkPolicy default/allow-web): unknown field spec.podSelectr
//! ```
//! Decoding is strict: an unknown field anywhere is an error. The Kubernetes types ignore
//! unknown fields when they deserialize, so the check compares the document with what the
//! decoded object serializes back to: a field given but not serialized back was not
//! understood.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::resource::Object;
use crate::{validate, Kind};

/// Where a document came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file (`-` for standard input).
    pub source: String,
    /// The document's position in the file, from 1 (0: the file as a whole).
    pub document: usize,
    /// The item's position (from 1) when the document is a `List`.
    pub item: Option<usize>,
}

impl Origin {
    /// Document `document` of `source`.
    pub fn new(source: impl Into<String>, document: usize) -> Origin {
        Origin {
            source: source.into(),
            document,
            item: None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let src = if self.source == "-" {
            "<stdin>"
        } else {
            &self.source
        };
        f.write_str(src)?;
        if self.document > 0 {
            write!(f, ": document {}", self.document)?;
        }
        if let Some(i) = self.item {
            write!(f, ", item {i}")?;
        }
        Ok(())
    }
}

/// One document of a manifest, parsed but not yet decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Where it came from.
    pub origin: Origin,
    /// Its content.
    pub value: Value,
}

/// What is wrong with a manifest or one of its documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// Where.
    pub origin: Origin,
    /// The object (`Pod default/web`), once known.
    pub object: Option<String>,
    /// Each problem, naming its field.
    pub problems: Vec<String>,
}

impl ManifestError {
    /// One problem at `origin`.
    pub fn new(origin: Origin, problem: impl Into<String>) -> Self {
        ManifestError {
            origin,
            object: None,
            problems: vec![problem.into()],
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(o) = &self.object {
            write!(f, " ({o})")?;
        }
        write!(f, ": {}", self.problems.join("; "))
    }
}

/// Splits `text` (the content of `source`) into documents: a JSON stream when it starts
/// with `{`, YAML otherwise. Empty documents are skipped; `List` documents are replaced by
/// their items.
pub fn parse_documents(source: &str, text: &str) -> Result<Vec<Document>, ManifestError> {
    let whole = Origin::new(source, 0);
    let values: Vec<Value> = if text.trim_start().starts_with('{') {
        serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .map_err(|e| ManifestError::new(whole, format!("invalid JSON: {e}")))?
    } else {
        // YAML 1.2 scalars: `n`, `yes`, `on` stay strings (a namespace named `n`), `0755`
        // stays a string rather than an octal number.
        let opts = serde_saphyr::options! {
            strict_booleans: true,
            leading_zero_numbers_as_strings: true,
        };
        serde_saphyr::from_multiple_with_options::<Value>(text, opts).map_err(|e| {
            // The first line says where and what; the rest is a source snippet.
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or("");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            ManifestError::new(whole, format!("invalid YAML: {first}"))
        })?
    };
    let mut docs = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let origin = Origin::new(source, i + 1);
        if value.is_null() {
            continue;
        }
        if value.get("kind").and_then(Value::as_str) == Some("List") {
            let Some(items) = value.get("items").and_then(Value::as_array) else {
                return Err(ManifestError::new(
                    origin,
                    "items: a List needs a list of items",
                ));
            };
            for (j, item) in items.iter().enumerate() {
                docs.push(Document {
                    origin: Origin {
                        item: Some(j + 1),
                        ..origin.clone()
                    },
                    value: item.clone(),
                });
            }
            continue;
        }
        docs.push(Document { origin, value });
    }
    Ok(docs)
}

/// The fields of `given` that `understood` lacks (nulls aside), as paths.
pub fn unknown_fields(given: &Value, understood: &Value) -> Vec<String> {
    fn walk(given: &Value, understood: &Value, path: &str, out: &mut Vec<String>) {
        match (given, understood) {
            (Value::Object(g), Value::Object(u)) => {
                for (k, v) in g {
                    if v.is_null() {
                        continue;
                    }
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match u.get(k) {
                        None => out.push(p),
                        Some(uv) => walk(v, uv, &p, out),
                    }
                }
            }
            (Value::Array(g), Value::Array(u)) => {
                for (i, (gv, uv)) in g.iter().zip(u).enumerate() {
                    walk(gv, uv, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(given, understood, "", &mut out);
    out
}

/// Deserializes `v` as `T` with the failing field's path, then refuses unknown fields.
fn strict<T: DeserializeOwned + Serialize>(v: &Value) -> Result<T, Vec<String>> {
    let t: T = serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        vec![if path == "." {
            inner
        } else {
            format!("{path}: {inner}")
        }]
    })?;
    let back = serde_json::to_value(&t).map_err(|e| vec![e.to_string()])?;
    let unknown = unknown_fields(v, &back);
    if unknown.is_empty() {
        Ok(t)
    } else {
        Err(unknown
            .into_iter()
            .map(|p| format!("unknown field {p}"))
            .collect())
    }
}

/// What a document's header says: `Kind namespace/name` for messages, whatever the rest.
fn header(v: &Value) -> Option<String> {
    let kind = v.get("kind")?.as_str()?;
    let meta = v.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("<no name>");
    Some(
        match meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
        {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        },
    )
}

/// Decodes one document strictly: known kind, every field understood, values of the right
/// types. (Meaning is checked by [`crate::validate`].)
pub fn decode(doc: &Document) -> Result<Object, ManifestError> {
    let fail = |problems: Vec<String>| ManifestError {
        origin: doc.origin.clone(),
        object: header(&doc.value),
        problems,
    };
    let v = &doc.value;
    if !v.is_object() {
        return Err(fail(vec![format!(
            "a document must be a mapping (apiVersion, kind, metadata...), not {}",
            match v {
                Value::Array(_) => "a list",
                Value::String(_) => "a string",
                _ => "a scalar",
            }
        )]));
    }
    let text = |k: &str| v.get(k).and_then(Value::as_str);
    let (api_version, kind) = match (text("apiVersion"), text("kind")) {
        (Some(a), Some(k)) => (a, k),
        (None, _) => return Err(fail(vec!["apiVersion: missing".into()])),
        (_, None) => return Err(fail(vec!["kind: missing".into()])),
    };
    let kind = Kind::from_type(api_version, kind).map_err(|e| fail(vec![e]))?;
    let obj = match kind {
        Kind::Namespace => strict(v).map(Object::Namespace),
        Kind::Pod => strict(v).map(Object::Pod),
        Kind::Service => strict(v).map(Object::Service),
        Kind::NetworkPolicy => strict(v).map(Object::NetworkPolicy),
        Kind::ClusterNetwork => strict(v).map(Object::ClusterNetwork),
        Kind::EgressPolicy => strict(v).map(Object::EgressPolicy),
        Kind::Node => strict(v).map(Object::Node),
        Kind::IpamBlock => strict(v).map(Object::IpamBlock),
        Kind::Attachment => strict(v).map(Object::Attachment),
    }
    .map_err(fail)?;
    Ok(obj)
}

/// A document ready to be applied: decoded, validated, normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct Applicable {
    /// Where it came from.
    pub origin: Origin,
    /// The object, normalized (see [`validate::normalize`]).
    pub object: Object,
    /// The `metadata.resourceVersion` the document carried: the update must then find the
    /// object unchanged since that revision.
    pub precondition: Option<i64>,
}

/// Decodes, checks and normalizes a document a user applies: system-written kinds are
/// refused, every field is checked (all problems reported together).
pub fn admit(doc: &Document) -> Result<Applicable, ManifestError> {
    let mut object = decode(doc)?;
    let fail = |o: &Object, problems: Vec<String>| ManifestError {
        origin: doc.origin.clone(),
        object: Some(o.describe()),
        problems,
    };
    if object.kind().system_written() {
        return Err(fail(
            &object,
            vec![format!(
                "{} is written by the cluster itself (agents and plugins): it can be read \
                 (cnictl get {}), not applied",
                object.kind(),
                object.kind().plural()
            )],
        ));
    }
    let precondition = validate::normalize(&mut object).map_err(|p| fail(&object, p))?;
    let problems = validate::object(&object);
    if !problems.is_empty() {
        return Err(fail(&object, problems));
    }
    Ok(Applicable {
        origin: doc.origin.clone(),
        object,
        precondition,
    })
}

/// Parses and admits every document of `text`; every failing document is reported (the
/// caller refuses the whole manifest when any fails).
pub fn admit_all(source: &str, text: &str) -> Result<Vec<Applicable>, Vec<ManifestError>> {
    let docs = parse_documents(source, text).map_err(|e| vec![e])?;
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for d in &docs {
        match admit(d) {
            Ok(a) => ok.push(a),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(errors)
    }
}

/// `v` as YAML (what `cnictl get -o yaml` prints).
pub fn to_yaml(v: &Value) -> String {
    serde_saphyr::to_string(v).unwrap_or_else(|e| format!("# cannot write YAML: {e}\n"))
}

#[cfg(test)]
mod tests;
