//! The tidy test of `DESIGN.md` section 1: the kernel in `src/` reaches files, clocks and
//! randomness only through `Env`, iterates no unordered collection, and keeps functions short.
//!
//! Rules, for every `.rs` file under `src/`:
//! - outside `src/env/os*` (the real-OS `Env`), no `std::fs`, `Instant::now`,
//!   `SystemTime::now`, `.elapsed()` (a `SystemTime` from `Env::now_wall` would read the real
//!   clock through it), `thread::sleep`, and no OS randomness (`thread_rng`, `rand::random`,
//!   `rand::rng`, `OsRng`, `from_entropy`, `from_os_rng`); `use` groups are expanded, so
//!   `use std::{fs, io}` counts;
//! - outside `src/env/os*`, no `HashMap`/`HashSet`, since their iteration order can reach
//!   output, unless the line carries `// tidy: unordered-ok: <reason>`;
//! - everywhere, no function longer than [`FN_LINES_MAX`] lines (70, as `shared/STYLE.md`
//!   asks), counted from the `fn` line to its closing brace;
//! - each layer imports only the layers below it ([`ROOMS`]): env <- wal, env <- checkpoint,
//!   both <- recovery <- shard <- kernel. A `use` (groups expanded, `super::` resolved) or an
//!   inline `crate::<layer>` path into a layer the file's folder may not import is flagged,
//!   unless the `use` declaration carries `// tidy: compat-path: <reason>` (a re-export kept
//!   only so code written against an old path compiles);
//! - `src/lib.rs` declares no public module but [`PUBLIC_MODULES`] unless it is gated by
//!   `#[cfg(feature = "internals")]`, and re-exports no layer module: the layers are behind
//!   the `internals` line.
//!
//! Comments, doc comments and string and character literals never trigger a rule, and braces
//! inside them do not count. The checker is a pure function, [`check_source`], so the tests
//! below prove each rule can fail as well as that the real tree passes.

use std::path::Path;

/// The longest a function may be, in lines from its `fn` line to its closing brace.
/// `shared/STYLE.md`: "functions under ~70".
const FN_LINES_MAX: usize = 70;

/// Each layer folder under `src/`, and the layers it must not import (those above it, and
/// its sibling: `wal` and `checkpoint` are independent).
const ROOMS: &[(&str, &[&str])] = &[
    ("env", &["wal", "checkpoint", "recovery", "shard", "kernel"]),
    ("wal", &["checkpoint", "recovery", "shard", "kernel"]),
    ("checkpoint", &["wal", "recovery", "shard", "kernel"]),
    ("recovery", &["shard", "kernel"]),
    ("shard", &["kernel"]),
    ("kernel", &[]),
];

/// Functions allowed over [`FN_LINES_MAX`] for now, by file and name, each with the reason.
/// Keep this list short and shrinking.
const LONG_FUNCTIONS_ALLOWED: &[(&str, &str, &str)] = &[];

/// The marker that lets one `use` declaration cross the import direction; a reason must follow.
const COMPAT_PATH_MARKER: &str = "// tidy: compat-path:";

/// The modules `src/lib.rs` may declare public without the `internals` feature.
const PUBLIC_MODULES: &[&str] = &["env"];

/// The attribute that puts a module of `src/lib.rs` behind the `internals` line.
const INTERNALS_GATE: &str = "#[cfg(feature = \"internals\")]";

/// Files that implement the real-OS `Env` and so may touch the OS directly.
const OS_ENV_PREFIX: &str = "src/env/os";

/// The marker that allows an unordered collection on its line; a reason must follow it.
const UNORDERED_OK_MARKER: &str = "// tidy: unordered-ok:";

/// What the kernel must not name outside the real-OS `Env`, and why.
const BANNED: &[(&str, &str)] = &[
    ("std::fs", "file system access goes through `Env`"),
    ("Instant::now", "clocks go through `Env`"),
    ("SystemTime::now", "clocks go through `Env`"),
    (".elapsed(", "reads the real clock; clocks go through `Env`"),
    ("thread::sleep", "sleeping goes through `Env`"),
    ("thread_rng", "randomness comes from the seed, never the OS"),
    ("rand::random", "randomness comes from the seed, never the OS"),
    ("rand::rng", "randomness comes from the seed, never the OS"),
    ("OsRng", "randomness comes from the seed, never the OS"),
    ("from_entropy", "randomness comes from the seed, never the OS"),
    ("from_os_rng", "randomness comes from the seed, never the OS"),
];

const UNORDERED: &[&str] = &["HashMap", "HashSet"];

/// Every rule violation in the source `text` of the file at `path` (relative to the crate
/// root, `/`-separated), as `path:line: message`, in line order.
fn check_source(path: &str, text: &str) -> Vec<String> {
    let code = strip_comments_and_literals(text);
    let mut violations = Vec::new();
    if !path.starts_with(OS_ENV_PREFIX) {
        violations.extend(banned_names(&code));
        violations.extend(unordered_collections(text, &code));
    }
    let allowed: Vec<&str> =
        LONG_FUNCTIONS_ALLOWED.iter().filter(|(file, ..)| *file == path).map(|(_, name, _)| *name).collect();
    violations.extend(long_functions(&code, &allowed));
    violations.extend(imports_against_direction(path, text, &code));
    if path == "src/lib.rs" {
        violations.extend(public_layer_modules(text, &code));
    }
    if !path.starts_with("src/env/") {
        violations.extend(sync_ops_not_named_sync(text));
    }
    violations.sort();
    violations.into_iter().map(|(line, message)| format!("{path}:{line}: {message}")).collect()
}

/// Lines that call a sync and name the operation in a string literal without the word
/// "sync": `Failure::after_failed_sync` reads a failed call's op name to refuse an in-process
/// reopen after a failed sync (fsyncgate), so a sync named otherwise would let one through.
fn sync_ops_not_named_sync(text: &str) -> Vec<(usize, String)> {
    const SYNC_CALLS: &[&str] = &[".sync_data()", ".sync_all()", "sync_dir(", "sync_file("];
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if !SYNC_CALLS.iter().any(|call| line.contains(call)) || line.trim_start().starts_with("//") {
            continue;
        }
        // The op name sits on the call's line or, when the call's error is mapped after it,
        // on the next line (`if let Err(e) = f.sync_data() {` / `return Err(io("op", ..))`).
        let mut literals: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
        if literals.is_empty()
            && let Some(next) = lines.get(index + 1)
            && next.contains("Err(")
        {
            literals = next.split('"').skip(1).step_by(2).take(1).collect();
        }
        if let Some(op) = literals.iter().find(|op| !op.contains("sync")) {
            found.push((
                index + 1,
                format!(
                    "a sync call whose op name {op:?} does not say \"sync\" (see Failure::after_failed_sync)"
                ),
            ));
        }
    }
    found
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Byte offsets where `pattern` occurs in `text` as whole tokens: an identifier character at
/// either end of the pattern must not continue into its neighbour.
fn find_token(text: &str, pattern: &str) -> Vec<usize> {
    let starts_ident = pattern.chars().next().is_some_and(is_ident);
    let ends_ident = pattern.chars().next_back().is_some_and(is_ident);
    text.match_indices(pattern)
        .map(|(at, _)| at)
        .filter(|&at| {
            let before = text[..at].chars().next_back();
            let after = text[at + pattern.len()..].chars().next();
            let joins_before = starts_ident && before.is_some_and(is_ident);
            let joins_after = ends_ident && after.is_some_and(is_ident);
            !joins_before && !joins_after
        })
        .collect()
}

fn banned_in(text: &str) -> impl Iterator<Item = &'static (&'static str, &'static str)> + '_ {
    BANNED.iter().filter(move |(pattern, _)| !find_token(text, pattern).is_empty())
}

/// Banned names, written out in the code or brought in by a `use` group (reported as
/// `via <path>`); one violation per name and line.
fn banned_names(code: &str) -> Vec<(usize, String)> {
    let mut found = std::collections::BTreeMap::new();
    let lines = code.lines().enumerate().map(|(index, line)| (index + 1, line.to_owned(), None));
    let used = use_paths(code).into_iter().map(|(line, path)| (line, path.clone(), Some(path)));
    for (line, text, via) in lines.chain(used) {
        for (pattern, why) in banned_in(&text) {
            let via = via.as_ref().map(|path| format!(" (via `use {path}`)")).unwrap_or_default();
            let message = format!("`{pattern}` outside {OS_ENV_PREFIX}*{via}: {why}");
            found.entry((line, *pattern)).or_insert(message);
        }
    }
    found.into_iter().map(|((line, _), message)| (line, message)).collect()
}

fn unordered_collections(text: &str, code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (index, (original, line)) in text.lines().zip(code.lines()).enumerate() {
        let allowed = original
            .find(UNORDERED_OK_MARKER)
            .is_some_and(|at| !original[at + UNORDERED_OK_MARKER.len()..].trim().is_empty());
        for name in UNORDERED.iter().filter(|name| !find_token(line, name).is_empty()) {
            if !allowed {
                found.push((
                    index + 1,
                    format!(
                        "`{name}` iterates in arbitrary order: use BTreeMap/BTreeSet or sort, or mark \
                         the line `{UNORDERED_OK_MARKER} <reason>`"
                    ),
                ));
            }
        }
    }
    found
}

/// `text` with every comment and string or character literal replaced by spaces, newlines
/// kept, so lines and columns still match the original.
fn strip_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let end = literal_or_comment_end(&chars, i);
        if end == i {
            out.push(chars[i]);
            i += 1;
        } else {
            out.extend(chars[i..end].iter().map(|&c| if c == '\n' { '\n' } else { ' ' }));
            i = end;
        }
    }
    out
}

/// If a comment or literal starts at `i`, the index just past it; otherwise `i`.
fn literal_or_comment_end(chars: &[char], i: usize) -> usize {
    let at = |k: usize| chars.get(k).copied();
    let starts_token = i == 0 || !is_ident(chars[i - 1]);
    match chars[i] {
        '/' if at(i + 1) == Some('/') => (i..chars.len()).find(|&k| chars[k] == '\n').unwrap_or(chars.len()),
        '/' if at(i + 1) == Some('*') => block_comment_end(chars, i),
        '"' => quoted_end(chars, i + 1, '"'),
        '\'' => char_literal_end(chars, i),
        'r' | 'b' | 'c' if starts_token => raw_string_end(chars, i).unwrap_or(i),
        _ => i,
    }
}

fn block_comment_end(chars: &[char], start: usize) -> usize {
    let (mut depth, mut k) = (0, start);
    while k + 1 < chars.len() {
        match (chars[k], chars[k + 1]) {
            ('/', '*') => {
                depth += 1;
                k += 2;
            }
            ('*', '/') => {
                depth -= 1;
                k += 2;
                if depth == 0 {
                    return k;
                }
            }
            _ => k += 1,
        }
    }
    chars.len()
}

/// The index past the `close` that ends a literal whose body starts at `k`, honouring `\`
/// escapes.
fn quoted_end(chars: &[char], mut k: usize, close: char) -> usize {
    while k < chars.len() {
        match chars[k] {
            '\\' => k += 2,
            c if c == close => return k + 1,
            _ => k += 1,
        }
    }
    chars.len()
}

/// A character literal (`'x'`, `'\n'`, `'\u{7f}'`) or, if none, a lifetime or label (left as
/// code).
fn char_literal_end(chars: &[char], i: usize) -> usize {
    match (chars.get(i + 1), chars.get(i + 2)) {
        (Some('\\'), _) => quoted_end(chars, i + 1, '\''),
        (Some(_), Some('\'')) => i + 3,
        _ => i,
    }
}

/// A raw string (`r"…"`, `r#"…"#`, `br"…"`, `cr#"…"#`) starting at `i`, if there is one.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    let mut k = i;
    if chars[k] != 'r' {
        k += 1;
        if chars.get(k) != Some(&'r') {
            return None;
        }
    }
    k += 1;
    let hashes = chars[k..].iter().take_while(|&&c| c == '#').count();
    k += hashes;
    if chars.get(k) != Some(&'"') {
        return None;
    }
    let closing: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
    (k + 1..chars.len())
        .find(|&end| chars[end..].starts_with(&closing))
        .map(|end| end + closing.len())
        .or(Some(chars.len()))
}

/// A token of a `use` tree, with its line.
#[derive(Clone, Debug, PartialEq, Eq)]
enum UseToken {
    Name(String),
    Separator,
    Open,
    Close,
    Comma,
    Other,
}

/// Every path a `use` declaration in `code` brings in, expanded out of its groups
/// (`use std::{fs::File, io}` gives `std::fs::File` and `std::io`), with the line of its
/// last name.
fn use_paths(code: &str) -> Vec<(usize, String)> {
    use_declarations(code).into_iter().flat_map(|span| use_paths_in(code, span)).collect()
}

/// The byte span of every `use` declaration in `code`, from `use` to its `;`.
fn use_declarations(code: &str) -> Vec<(usize, usize)> {
    let ends = |at: usize| code[at..].find(';').map(|length| (at, at + length));
    find_token(code, "use").into_iter().filter_map(ends).collect()
}

/// The paths of the one `use` declaration at `span`, expanded out of its groups.
fn use_paths_in(code: &str, (at, end): (usize, usize)) -> Vec<(usize, String)> {
    let first_line = code[..at].matches('\n').count() + 1;
    let tokens = use_tokens(&code[at + "use".len()..end], first_line);
    let mut paths = Vec::new();
    let mut position = 0;
    expand_use_tree(&tokens, &mut position, String::new(), &mut paths);
    paths
}

fn use_tokens(text: &str, first_line: usize) -> Vec<(usize, UseToken)> {
    let mut tokens = Vec::new();
    let (mut line, mut rest) = (first_line, text);
    while let Some(c) = rest.chars().next() {
        let (token, length) = match c {
            '\n' => {
                line += 1;
                (None, 1)
            }
            c if c.is_whitespace() => (None, c.len_utf8()),
            ':' if rest.starts_with("::") => (Some(UseToken::Separator), 2),
            '{' => (Some(UseToken::Open), 1),
            '}' => (Some(UseToken::Close), 1),
            ',' => (Some(UseToken::Comma), 1),
            c if is_ident(c) => {
                let length = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
                (Some(UseToken::Name(rest[..length].to_owned())), length)
            }
            c => (Some(UseToken::Other), c.len_utf8()),
        };
        tokens.extend(token.map(|token| (line, token)));
        rest = &rest[length..];
    }
    tokens
}

/// Expands one use tree starting at `tokens[*position]` under `prefix` into `out`; stops
/// before a `,` or `}` that ends it.
fn expand_use_tree(
    tokens: &[(usize, UseToken)],
    position: &mut usize,
    prefix: String,
    out: &mut Vec<(usize, String)>,
) {
    let mut path = prefix;
    let mut line = 0;
    while let Some((token_line, token)) = tokens.get(*position) {
        match token {
            UseToken::Name(name) if name == "as" => {
                // `as alias`: the alias is not part of the path.
                *position += 2;
                break;
            }
            UseToken::Name(name) => {
                path.push_str(name);
                line = *token_line;
                *position += 1;
            }
            UseToken::Separator => {
                path.push_str("::");
                *position += 1;
            }
            UseToken::Open => {
                *position += 1;
                loop {
                    expand_use_tree(tokens, position, path.clone(), out);
                    match tokens.get(*position) {
                        Some((_, UseToken::Comma)) => *position += 1,
                        Some((_, UseToken::Close)) => {
                            *position += 1;
                            break;
                        }
                        _ => return,
                    }
                    if matches!(tokens.get(*position), Some((_, UseToken::Close))) {
                        *position += 1;
                        break;
                    }
                }
                return;
            }
            UseToken::Comma | UseToken::Close => break,
            UseToken::Other => *position += 1,
        }
    }
    let path = path.trim_start_matches("::").trim_end_matches("::self").to_owned();
    if line > 0 {
        out.push((line, path));
    }
}

/// Every function whose body, from its `fn` line to its closing brace, is longer than
/// [`FN_LINES_MAX`] lines, except those named in `allowed`.
fn long_functions(code: &str, allowed: &[&str]) -> Vec<(usize, String)> {
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut found = Vec::new();
    for at in find_token(code, "fn") {
        let after = code[at + 2..].trim_start();
        let name: String = after.chars().take_while(|&c| is_ident(c)).collect();
        if name.is_empty() {
            continue; // a function pointer type such as `fn(u8) -> u8`
        }
        let Some(open) = body_start(code, at) else { continue };
        let first = line_of(at);
        let lines = match matching_brace(code, open) {
            Some(close) => line_of(close) - first + 1,
            None => {
                found.push((first, format!("function `{name}` has no closing brace")));
                continue;
            }
        };
        if lines > FN_LINES_MAX && !allowed.contains(&name.as_str()) {
            found.push((first, format!("function `{name}` is {lines} lines long (max {FN_LINES_MAX})")));
        }
    }
    found
}

/// The `{` that opens the body of the function declared at `at`, or `None` for a declaration
/// without a body (`fn f();`). A `;` inside brackets (`[u8; 4]`) does not end it.
fn body_start(code: &str, at: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (offset, c) in code[at..].char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            '{' if depth == 0 => return Some(at + offset),
            ';' if depth == 0 => return None,
            _ => {}
        }
    }
    None
}

fn matching_brace(code: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (offset, c) in code[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + offset);
                }
            }
            _ => {}
        }
    }
    None
}

/// The module path of the file at `path` (`src/wal/aries/mod.rs` is `[wal, aries]`,
/// `src/wal/scan.rs` is `[wal, scan]`, `src/lib.rs` is `[]`).
fn module_of(path: &str) -> Vec<String> {
    let inner = path.trim_start_matches("src/").trim_end_matches(".rs");
    let mut module: Vec<String> = inner.split('/').map(str::to_owned).collect();
    if matches!(module.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        module.pop();
    }
    module
}

/// The top-level module of the crate a path written in `module` names, if it names one of
/// the crate's (`crate::wal::Wal` and, from `[shard, ops]`, `super::super::wal` are `wal`).
fn top_module_named(use_path: &str, module: &[String]) -> Option<String> {
    let parts: Vec<&str> = use_path.split("::").collect();
    let mut resolved: Vec<String> = match parts.first().copied() {
        Some("crate") => Vec::new(),
        Some("super" | "self") => module.to_vec(),
        _ => return None,
    };
    for part in &parts[usize::from(parts.first() == Some(&"crate"))..] {
        match *part {
            "super" => {
                resolved.pop()?;
            }
            "self" => {}
            name => resolved.push(name.to_owned()),
        }
    }
    resolved.into_iter().next()
}

/// Imports into a layer that the folder of `path` may not import ([`ROOMS`]).
fn imports_against_direction(path: &str, text: &str, code: &str) -> Vec<(usize, String)> {
    let module = module_of(path);
    let Some((room, banned)) = module.first().and_then(|top| ROOMS.iter().find(|(room, _)| room == top))
    else {
        return Vec::new();
    };
    let mut named = Vec::new();
    let declarations = use_declarations(code);
    for &(at, end) in &declarations {
        let marked = text[at..end].find(COMPAT_PATH_MARKER).is_some_and(|m| {
            !text[at + m + COMPAT_PATH_MARKER.len()..end].lines().next().unwrap_or("").trim().is_empty()
        });
        if !marked {
            named.extend(use_paths_in(code, (at, end)));
        }
    }
    for at in find_token(code, "crate::") {
        if !declarations.iter().any(|&(start, end)| (start..end).contains(&at)) {
            let rest: String = code[at..].chars().take_while(|&c| is_ident(c) || c == ':').collect();
            named.push((code[..at].matches('\n').count() + 1, rest));
        }
    }
    let mut found = std::collections::BTreeMap::new();
    for (line, use_path) in named {
        if let Some(top) = top_module_named(&use_path, &module).filter(|top| banned.contains(&top.as_str())) {
            let message = format!(
                "`{use_path}`: src/{room}/ must not import `{top}` (layers import only those below them: \
                 env <- wal, checkpoint <- recovery <- shard <- kernel)"
            );
            found.entry((line, top)).or_insert(message);
        }
    }
    found.into_iter().map(|((line, _), message)| (line, message)).collect()
}

/// Public modules of `src/lib.rs` outside [`PUBLIC_MODULES`] that no `internals` gate covers,
/// and re-exports of a layer module (which would make it public without the gate).
fn public_layer_modules(text: &str, code: &str) -> Vec<(usize, String)> {
    // Attributes are read from `text`: their string literals are blank in `code`.
    let originals: Vec<&str> = text.lines().collect();
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let Some(name) = line.trim().strip_prefix("pub mod ") else { continue };
        let name = name.trim_end_matches(';').trim();
        let attributes =
            originals[..index].iter().rev().map(|l| l.trim()).take_while(|l| l.starts_with("#["));
        let gated = attributes.into_iter().any(|attribute| attribute == INTERNALS_GATE);
        if !gated && !PUBLIC_MODULES.contains(&name) {
            found.push((
                index + 1,
                format!("`pub mod {name}` without `{INTERNALS_GATE}`: layers stay behind `internals`"),
            ));
        }
    }
    let layers: Vec<&str> =
        ROOMS.iter().map(|(room, _)| *room).filter(|room| !PUBLIC_MODULES.contains(room)).collect();
    for (line, use_path) in use_paths(code) {
        let name = use_path.trim_start_matches("crate::").trim_start_matches("self::");
        if layers.contains(&name) && lines.get(line - 1).is_some_and(|l| l.contains("pub")) {
            found.push((
                line,
                format!("`{use_path}` re-exports a layer module: layers stay behind `internals`"),
            ));
        }
    }
    found
}

/// Every `.rs` file under `dir`, as `/`-separated paths relative to `root`, sorted.
fn rust_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(root, &path, out);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            let relative = path.strip_prefix(root).expect("below the root");
            let parts: Vec<_> =
                relative.components().map(|part| part.as_os_str().to_string_lossy()).collect();
            out.push(parts.join("/"));
        }
    }
}

#[test]
fn tidy_source_tree_has_no_violations() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(root, &root.join("src"), &mut files);
    files.sort();
    assert!(files.iter().any(|file| file == "src/env/os.rs"), "the scan found the kernel's files: {files:?}");
    let violations: Vec<String> = files
        .iter()
        .flat_map(|file| {
            let text =
                std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("read {file}: {e}"));
            check_source(file, &text)
        })
        .collect();
    assert!(
        violations.is_empty(),
        "tidy found {} violation(s):\n{}",
        violations.len(),
        violations.join("\n")
    );
}

/// Checks `text` as a kernel file outside the real-OS `Env`.
fn check(text: &str) -> Vec<String> {
    check_source("src/wal/writer.rs", text)
}

/// Asserts `text` gives exactly one violation, on `line`, whose message names `what`.
fn assert_flagged(text: &str, line: usize, what: &str) {
    let violations = check(text);
    assert_eq!(violations.len(), 1, "one violation expected for {text:?}, got {violations:#?}");
    let prefix = format!("src/wal/writer.rs:{line}: ");
    assert!(
        violations[0].starts_with(&prefix) && violations[0].contains(what),
        "expected `{prefix}…{what}…`, got {:?}",
        violations[0]
    );
}

#[test]
fn tidy_flags_a_sync_whose_op_name_hides_it() {
    assert_flagged(
        "fn f() {\n    io(\"seal segment\", path, file.sync_data())?;\n}\n",
        2,
        "op name \"seal segment\"",
    );
    assert_flagged(
        "fn f() {\n    if let Err(e) = file.sync_data() {\n        return Err(io(\"seal\", path, e));\n    }\n}\n",
        2,
        "op name \"seal\"",
    );
    assert!(check("fn f() {\n    io(\"sync segment\", path, file.sync_data())?;\n}\n").is_empty());
}

#[test]
fn tidy_flags_std_fs_outside_the_os_env() {
    assert_flagged("use std::fs;\n", 1, "`std::fs`");
    assert_flagged("fn f() {\n    let _ = std::fs::read(\"x\");\n}\n", 2, "`std::fs` outside src/env/os*");
    assert_flagged(
        "use std::io;\nuse std::{fs::File, io::Read};\n",
        2,
        "`std::fs` outside src/env/os* (via `use std::fs::File`)",
    );
    assert_flagged("use std::{\n    io,\n    fs,\n};\n", 3, "(via `use std::fs`)");
}

#[test]
fn tidy_flags_real_clocks() {
    assert_flagged("fn f() {\n    let t = Instant::now();\n}\n", 2, "`Instant::now`");
    assert_flagged("fn f() -> u64 {\n    std::time::SystemTime::now();\n    0\n}\n", 2, "`SystemTime::now`");
    assert_flagged("fn f(env: &E) {\n    let age = env.now_wall().elapsed();\n}\n", 2, "`.elapsed(`");
}

#[test]
fn tidy_flags_real_sleep() {
    assert_flagged("fn f() {\n    std::thread::sleep(D);\n}\n", 2, "`thread::sleep`");
    assert_flagged(
        "use std::thread::{sleep, spawn};\n",
        1,
        "`thread::sleep` outside src/env/os* (via `use std::thread::sleep`)",
    );
}

#[test]
fn tidy_flags_os_randomness() {
    assert_flagged("fn f() {\n    let mut rng = rand::thread_rng();\n}\n", 2, "`thread_rng`");
    assert_flagged("fn f() -> u64 {\n    rand::random()\n}\n", 2, "`rand::random`");
    assert_flagged("fn f() -> u64 {\n    rand::rng().random()\n}\n", 2, "`rand::rng`");
    assert_flagged("use rand::{random, Rng};\n", 1, "(via `use rand::random`)");
    assert_flagged("let rng = ChaCha8Rng::from_os_rng();\n", 1, "`from_os_rng`");
}

#[test]
fn tidy_flags_unordered_collections_without_a_marker() {
    assert_flagged("use std::collections::HashMap;\n", 1, "`HashMap` iterates in arbitrary order");
    assert_flagged("fn f() {\n    let s: HashSet<u8> = HashSet::new();\n}\n", 2, "`HashSet`");
    // A marker without a reason does not count.
    assert_flagged("use std::collections::HashMap; // tidy: unordered-ok:\n", 1, "`HashMap`");
    let marked = "use std::collections::HashMap; // tidy: unordered-ok: lookups only, never iterated\n";
    assert_eq!(check(marked), Vec::<String>::new());
}

/// A function whose `fn` line and closing brace are `lines` lines apart, inclusive.
fn function_of(lines: usize) -> String {
    let mut text = String::from("fn long() {\n");
    for index in 0..lines - 2 {
        text.push_str(&format!("    let _x{index} = {index};\n"));
    }
    text.push_str("}\n");
    text
}

#[test]
fn tidy_flags_functions_over_70_lines() {
    assert_eq!(function_of(71).lines().count(), 71);
    assert_flagged(&function_of(71), 1, "function `long` is 71 lines long (max 70)");
    assert_eq!(check(&function_of(70)), Vec::<String>::new());
    // Methods count too, at their own `fn` line, and in the real-OS Env as well.
    let method =
        format!("impl X {{\n    /// Doc.\n{}}}\n", function_of(71).replace("fn long", "    pub fn method"));
    assert_flagged(&method, 3, "function `method` is 71 lines long");
    assert_eq!(check_source("src/env/os.rs", &function_of(71)).len(), 1);
    // No function has an allowance any more (the WAL scan was split): it is flagged too.
    assert!(LONG_FUNCTIONS_ALLOWED.is_empty());
    let scan = function_of(91).replace("fn long", "fn scan");
    assert_eq!(check_source("src/wal/scan.rs", &scan).len(), 1);
    assert_eq!(check_source("src/wal/open.rs", &scan).len(), 1);
}

/// The violations of `text` as the file at `path` that concern the import direction.
fn direction(path: &str, text: &str) -> Vec<String> {
    check_source(path, text).into_iter().filter(|v| v.contains("must not import")).collect()
}

#[test]
fn tidy_flags_imports_against_the_layer_direction() {
    let flagged = |path: &str, text: &str, line: usize, what: &str| {
        let found = direction(path, text);
        assert_eq!(found.len(), 1, "one violation expected for {path}: {text:?}, got {found:#?}");
        assert!(found[0].starts_with(&format!("{path}:{line}: ")) && found[0].contains(what), "{found:?}");
    };
    flagged("src/checkpoint/load.rs", "use crate::wal::Lsn;\n", 1, "src/checkpoint/ must not import `wal`");
    flagged(
        "src/wal/scan.rs",
        "use crate::{env::Env,\n    checkpoint::CheckpointMeta};\n",
        2,
        "`checkpoint`",
    );
    flagged("src/wal/aries/undo.rs", "use super::super::super::recovery::recover;\n", 1, "`recovery`");
    flagged("src/shard/ops.rs", "fn f() -> crate::kernel::Config {\n    todo!()\n}\n", 1, "`kernel`");
    flagged("src/recovery/mod.rs", "use crate::shard::Shard;\n", 1, "src/recovery/ must not import `shard`");
    flagged("src/env/sim/fs.rs", "use crate::wal::format::Lsn;\n", 1, "src/env/ must not import `wal`");
    // What the direction allows: below, within, the crate root, std, comments and strings.
    let allowed = "use super::super::Lsn;\nuse super::scan;\nuse crate::env::Env;\nuse crate::Durability;\n\
                   use std::fmt;\n// crate::checkpoint\nconst S: &str = \"crate::kernel\";\n";
    assert_eq!(direction("src/wal/aries/undo.rs", allowed), Vec::<String>::new());
    let up = "use crate::checkpoint::CheckpointMeta;\nuse crate::wal::Record;\nuse crate::env::SharedEnv;\n";
    assert_eq!(direction("src/recovery/mod.rs", up), Vec::<String>::new());
    assert_eq!(
        direction("src/kernel/mod.rs", "use crate::shard::Shard;\nuse crate::recovery::X;\n"),
        Vec::<String>::new()
    );
    // A compat re-export passes only with the marker and a reason.
    let compat = "pub use crate::recovery::{\n    // tidy: compat-path: the old names\n    recover,\n};\n";
    assert_eq!(direction("src/checkpoint/mod.rs", compat), Vec::<String>::new());
    let no_reason = compat.replace(" the old names", "");
    flagged("src/checkpoint/mod.rs", &no_reason, 3, "`recovery`");
}

#[test]
fn tidy_flags_layer_modules_public_without_the_internals_gate() {
    let gated = "#[cfg(feature = \"internals\")]\npub mod wal;\n#[cfg(not(feature = \"internals\"))]\nmod wal;\n\
                 pub mod env;\npub use wal::Durability;\n";
    assert_eq!(check_source("src/lib.rs", gated), Vec::<String>::new());
    let open = "pub mod env;\n#[doc(hidden)]\npub mod wal;\n";
    let found = check_source("src/lib.rs", open);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].starts_with("src/lib.rs:3: `pub mod wal` without"), "{found:?}");
    let reexport = check_source("src/lib.rs", "mod shard;\npub use self::shard;\n");
    assert!(reexport.len() == 1 && reexport[0].contains("re-exports a layer module"), "{reexport:?}");
    // Only the crate root is held to it.
    assert_eq!(check_source("src/kernel/mod.rs", "pub mod layout;\n"), Vec::<String>::new());
}

#[test]
fn tidy_braces_in_comments_and_literals_do_not_count() {
    let tricky = "fn tricky<'a>(s: &'a str) -> char {\n    // }}}\n    /* } /* nested } */ } */\n    \
                  let _ = \"}\\\"}\";\n    let _ = r#\"}\"}\"#;\n    let _ = b'}';\n    let _ = '\\'';\n    \
                  '}'\n}\n";
    let text = format!("{tricky}{}", function_of(101));
    // Had a brace in a comment or literal counted, `tricky` would end in the wrong place or
    // swallow `long`.
    assert_flagged(&text, tricky.lines().count() + 1, "function `long` is 101 lines long");
    let declarations = "trait T {\n    fn f(&self, x: [u8; 4]);\n    fn g(&self) -> fn(u8) -> u8;\n}\n";
    assert_eq!(check(declarations), Vec::<String>::new());
}

#[test]
fn tidy_accepts_clean_code_and_mentions_in_comments_or_strings() {
    let clean = "use std::collections::{BTreeMap, BTreeSet};\nuse std::time::{Duration, SystemTime};\n\n\
                 /// Unlike std::fs::File, this goes through Env; never Instant::now() or thread_rng().\n\
                 fn f(env: &E) -> BTreeMap<u8, u8> {\n    // std::fs, HashMap, thread::sleep: none here.\n    \
                 /* SystemTime::now() */\n    let _ = \"std::fs::read HashMap\";\n    let _ = r#\"rand::random\"#;\n    \
                 BTreeMap::new()\n}\n";
    assert_eq!(check(clean), Vec::<String>::new());
    let module_docs = "//! Only src/env/os.rs may use std::fs or Instant::now.\n";
    assert_eq!(check(module_docs), Vec::<String>::new());
    // Names that merely contain a banned one are not it.
    let lookalikes =
        "struct NotAHashMapper;\nfn my_thread_rng_seed() {}\nmod stdx { pub mod fs {} }\nuse stdx::fs;\n";
    assert_eq!(check(lookalikes), Vec::<String>::new());
}

#[test]
fn tidy_allows_the_os_env_to_touch_the_os() {
    let os = "use std::fs::{self, File};\nuse std::time::{Duration, Instant, SystemTime};\n\
              fn now() -> Instant {\n    Instant::now()\n}\nfn wall() -> SystemTime {\n    SystemTime::now()\n}\n\
              fn nap(d: Duration) {\n    std::thread::sleep(d);\n}\n";
    assert_eq!(check_source("src/env/os.rs", os), Vec::<String>::new());
    assert_eq!(check_source("src/env/os/file.rs", os), Vec::<String>::new());
    let real_os = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/env/os.rs"))
        .expect("read src/env/os.rs");
    assert!(real_os.contains("std::fs"), "the real-OS Env uses std::fs");
    assert_eq!(check_source("src/env/os.rs", &real_os), Vec::<String>::new());
    // The same text anywhere else is flagged.
    let elsewhere = check_source("src/env/sim/fs.rs", os);
    let lines: Vec<&str> = elsewhere.iter().map(|v| v.split(": ").next().unwrap_or_default()).collect();
    assert_eq!(
        lines,
        ["src/env/sim/fs.rs:1", "src/env/sim/fs.rs:4", "src/env/sim/fs.rs:7", "src/env/sim/fs.rs:10"]
    );
}
