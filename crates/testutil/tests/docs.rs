//! The repository's documentation stays self-contained and its links resolve:
//! - every relative link of a Markdown file, and of a Rust doc comment that points at a file
//!   (`../../docs/x.md`), names a file or directory that exists, and a `#fragment` into a
//!   Markdown file names one of its headings (GitHub's anchors);
//! - every test that `docs/conformance.md` cites exists, as `fn name(` in the file it links;
//! - nothing points at notes kept outside the repository or at issue numbers.
//!
//! Pure: reads the checkout, runs nothing.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every file under `dir` with one of `exts`, skipping build output and hidden directories.
fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let ty = e.file_type().unwrap();
        if ty.is_dir() {
            if !(name.starts_with('.') || name == "target") {
                files(&e.path(), exts, out);
            }
        } else if ty.is_file() && exts.iter().any(|x| name.ends_with(x)) {
            out.push(e.path());
        }
    }
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

/// The lines of `text` outside fenced code blocks, with their numbers (1-based).
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// Link destinations of one line: inline `[text](dest)` and definitions `[label]: dest`.
fn destinations(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let Some(end) = after.find(')') else { break };
        let dest = after[..end].split_whitespace().next().unwrap_or("");
        out.push(dest.trim_matches(|c| c == '<' || c == '>').to_string());
        rest = &after[end..];
    }
    let t = line.trim_start();
    if let (Some(stripped), Some(i)) = (t.strip_prefix('['), t.find("]: ")) {
        if !stripped.starts_with('^') && i > 1 {
            if let Some(dest) = t[i + 3..].split_whitespace().next() {
                out.push(dest.to_string());
            }
        }
    }
    out
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings, duplicates numbered as GitHub numbers them.
fn anchors(md: &Path) -> BTreeSet<String> {
    let text = fs::read_to_string(md).unwrap();
    let mut seen = BTreeSet::new();
    for (_, line) in prose(&text) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            let base = slug(&line[hashes..]);
            let mut a = base.clone();
            let mut n = 0;
            while !seen.insert(a.clone()) {
                n += 1;
                a = format!("{base}-{n}");
            }
        }
    }
    seen
}

fn is_external(dest: &str) -> bool {
    dest.contains("://") || dest.starts_with("mailto:")
}

/// Checks one relative link of `from`; the problem found, if any.
fn check_link(from: &Path, dest: &str) -> Option<String> {
    let (path, fragment) = match dest.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (dest, None),
    };
    let target = if path.is_empty() {
        from.to_path_buf()
    } else {
        from.parent().unwrap().join(path)
    };
    if !target.exists() {
        return Some(format!("{dest}: no such file"));
    }
    // a link may not leave the repository
    let depth = Path::new(&rel(from)).components().count() as isize - 1;
    let mut level = 0isize;
    for c in Path::new(path).components() {
        match c {
            Component::ParentDir => level -= 1,
            Component::Normal(_) => level += 1,
            _ => {}
        }
        if level < -depth {
            return Some(format!("{dest}: outside the repository"));
        }
    }
    match fragment {
        Some(f) if target.extension().is_some_and(|x| x == "md") => {
            (!anchors(&target).contains(f)).then(|| format!("{dest}: no heading #{f}"))
        }
        _ => None,
    }
}

#[test]
fn relative_links_of_markdown_files_and_doc_comments_resolve() {
    let mut md = Vec::new();
    files(&root(), &[".md"], &mut md);
    let mut rs = Vec::new();
    files(&root(), &[".rs"], &mut rs);
    assert!(md.len() > 10 && rs.len() > 50, "walked the checkout");
    let mut bad = Vec::new();
    let mut checked = 0;
    // the benchmark report's templates and expected outputs are rendered into docs/: their
    // links are relative to docs/, checked there in the generated report
    let rendered_elsewhere = |f: &Path| {
        f.components()
            .any(|c| c.as_os_str() == "templates" || c.as_os_str() == "testdata")
    };
    for f in md.iter().filter(|f| !rendered_elsewhere(f)) {
        let text = fs::read_to_string(f).unwrap();
        for (n, line) in prose(&text) {
            for dest in destinations(line) {
                if dest.is_empty() || is_external(&dest) {
                    continue;
                }
                checked += 1;
                if let Some(why) = check_link(f, &dest) {
                    bad.push(format!("{}:{n}: {why}", rel(f)));
                }
            }
        }
    }
    for f in &rs {
        let text = fs::read_to_string(f).unwrap();
        let docs: String = text
            .lines()
            .map(|l| {
                let t = l.trim_start();
                t.strip_prefix("//!")
                    .or_else(|| t.strip_prefix("///"))
                    .unwrap_or("")
            })
            .collect::<Vec<_>>()
            .join("\n");
        for (n, line) in prose(&docs) {
            for dest in destinations(line) {
                // intra-doc links (`crate::x`, `mod@x`, `Type::f`) are rustdoc's to check
                let file_like = dest.contains(".md") || dest.starts_with("../");
                if is_external(&dest) || !file_like || dest.contains("::") {
                    continue;
                }
                checked += 1;
                if let Some(why) = check_link(f, &dest) {
                    bad.push(format!("{}:{n}: {why}", rel(f)));
                }
            }
        }
    }
    println!("{checked} relative links checked");
    assert!(bad.is_empty(), "broken links:\n{}", bad.join("\n"));
}

#[test]
fn every_test_the_conformance_list_cites_exists() {
    let doc = root().join("docs/conformance.md");
    let text = fs::read_to_string(&doc).unwrap();
    let mut bad = Vec::new();
    let mut cited = 0;
    for (n, line) in prose(&text) {
        if !line.starts_with('|') {
            continue;
        }
        // `[file](path.rs)` sets the file for the `test_name`s that follow it
        let mut file: Option<String> = None;
        let mut rest = line;
        loop {
            let link = rest.find("](");
            let tick = rest.find('`');
            match (link, tick) {
                (Some(l), t) if t.is_none_or(|t| l < t) => {
                    let after = &rest[l + 2..];
                    let end = after.find(')').unwrap();
                    let dest = &after[..end];
                    file = dest.ends_with(".rs").then(|| dest.to_string());
                    rest = &after[end..];
                }
                (_, Some(t)) => {
                    let after = &rest[t + 1..];
                    let Some(end) = after.find('`') else { break };
                    let name = &after[..end];
                    rest = &after[end + 1..];
                    let ident = !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                    if let (Some(f), true) = (&file, ident) {
                        cited += 1;
                        let src = fs::read_to_string(doc.parent().unwrap().join(f))
                            .unwrap_or_else(|e| panic!("{f}: {e}"));
                        if !src.contains(&format!("fn {name}(")) {
                            bad.push(format!("conformance.md:{n}: no fn {name} in {f}"));
                        }
                    }
                }
                _ => break,
            }
        }
    }
    assert!(
        cited > 50,
        "only {cited} tests cited: the table format changed?"
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn nothing_points_at_notes_outside_the_repository_or_at_issue_numbers() {
    // spelled in pieces so that this file does not match itself
    let notes = [
        ["design", ".md"].concat(),
        ["cni-", "reference"].concat(),
        ["-anchors", ".md"].concat(),
        ["../", "shared"].concat(),
    ];
    let mut all = Vec::new();
    files(
        &root(),
        &[".md", ".rs", ".sh", ".toml", ".conflist", ".json"],
        &mut all,
    );
    let mut bad = Vec::new();
    for f in &all {
        let Ok(text) = fs::read_to_string(f) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            let mut why: Vec<String> = notes
                .iter()
                .filter(|n| lower.contains(n.as_str()))
                .cloned()
                .collect();
            // the word followed by a number, with or without a space or `#` between
            for (at, _) in lower.match_indices("issue") {
                let tail = lower[at + 5..].trim_start_matches([' ', '#']);
                if tail.starts_with(|c: char| c.is_ascii_digit()) {
                    why.push(line[at..].chars().take(12).collect());
                }
            }
            if !why.is_empty() {
                bad.push(format!("{}:{}: {}", rel(f), i + 1, why.join(", ")));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn the_docs_index_lists_every_document() {
    let dir = root().join("docs");
    let index = fs::read_to_string(dir.join("README.md")).unwrap();
    let mut missing = Vec::new();
    for e in fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") && name != "README.md" && !index.contains(&format!("]({name})")) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "not listed in docs/README.md: {missing:?}"
    );
}
