//! README stays short and every command it shows runs as written: each shell block carries a
//! marker saying how it is checked. `<!-- run -->` (or `<!-- run exit=N -->`) blocks run here
//! with bash in the repository, this build's `scangate` first on PATH; `<!-- make -->` blocks
//! name Makefile targets that exist; `<!-- install:NAME -->` blocks run on a real control plane
//! in `tests/e2e_helm.rs`. Links to files in the repository must lead somewhere.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// How a shell block is checked.
#[derive(Debug, PartialEq)]
enum Marker {
    Run { exit: i32 },
    Make,
    Install(String),
}

/// Each ```sh block of `text` with the marker on the line before it.
fn blocks(text: &str) -> Vec<(Marker, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_end() != "```sh" {
            i += 1;
            continue;
        }
        let marker = i
            .checked_sub(1)
            .map(|m| lines[m].trim())
            .unwrap_or_default();
        let marker = match marker {
            "<!-- run -->" => Marker::Run { exit: 0 },
            "<!-- make -->" => Marker::Make,
            m => {
                if let Some(code) = m
                    .strip_prefix("<!-- run exit=")
                    .and_then(|r| r.strip_suffix(" -->"))
                {
                    Marker::Run {
                        exit: code.parse().unwrap_or_else(|e| panic!("{m}: {e}")),
                    }
                } else if let Some(name) = m
                    .strip_prefix("<!-- install:")
                    .and_then(|r| r.strip_suffix(" -->"))
                {
                    Marker::Install(name.to_string())
                } else {
                    panic!(
                        "the ```sh block at README.md line {} has no marker on the line before \
                         (<!-- run -->, <!-- run exit=N -->, <!-- make --> or <!-- install:NAME -->); \
                         found {m:?}",
                        i + 1
                    )
                }
            }
        };
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].trim_end() == "```")
            .unwrap_or_else(|| panic!("the block at README.md line {} is not closed", i + 1));
        out.push((marker, lines[i + 1..end].join("\n")));
        i = end + 1;
    }
    out
}

/// The targets the Makefile defines (`name:` or `a b:` at the start of a line).
fn make_targets() -> Vec<String> {
    read("Makefile")
        .lines()
        .filter(|l| !l.starts_with(['\t', ' ', '#', '.']))
        .filter_map(|l| l.split_once(':'))
        .filter(|(_, rest)| !rest.starts_with('='))
        .flat_map(|(names, _)| names.split_whitespace().map(String::from))
        .collect()
}

#[test]
fn readme_is_short_and_starts_with_the_install() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= 200,
        "README.md has {lines} lines: move reference to docs/"
    );
    let install = readme
        .lines()
        .position(|l| l == "## Install")
        .unwrap_or_else(|| panic!("README.md has no ## Install"));
    assert!(
        install < 20,
        "## Install is at line {}: keep it in the first screenful",
        install + 1
    );
}

#[test]
fn every_readme_block_has_a_marker_and_each_kind_is_there() {
    let found = blocks(&read("README.md"));
    assert!(found.iter().any(|(m, _)| matches!(m, Marker::Run { .. })));
    assert!(found.iter().any(|(m, _)| *m == Marker::Make));
    let e2e_helm = read("tests/e2e_helm.rs");
    for (marker, _) in &found {
        if let Marker::Install(name) = marker {
            assert!(
                e2e_helm.contains(&format!("\"{name}\"")),
                "tests/e2e_helm.rs does not run the README block install:{name}"
            );
        }
    }
}

#[test]
fn the_readmes_make_targets_exist() {
    let targets = make_targets();
    for (marker, block) in blocks(&read("README.md")) {
        if marker != Marker::Make {
            continue;
        }
        for line in block.lines() {
            let command = line.split('#').next().unwrap_or_default();
            let mut words = command.split_whitespace();
            assert_eq!(words.next(), Some("make"), "not a make command: {line}");
            for target in words.filter(|w| !w.contains('=')) {
                assert!(
                    targets.iter().any(|t| t == target),
                    "README runs `make {target}`, which the Makefile does not define"
                );
            }
        }
    }
}

#[test]
fn the_readmes_offline_blocks_run_as_written() {
    let bin = Path::new(env!("CARGO_BIN_EXE_scangate"))
        .parent()
        .unwrap_or_else(|| panic!("the scangate binary has no directory"));
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    for (marker, block) in blocks(&read("README.md")) {
        let Marker::Run { exit } = marker else {
            continue;
        };
        let out = Command::new("bash")
            .args(["-e", "-c", &block])
            .env("PATH", &path)
            .current_dir(repo())
            .output()
            .unwrap_or_else(|e| panic!("run bash: {e}"));
        assert_eq!(
            out.status.code(),
            Some(exit),
            "README block exited {:?}, not {exit}:\n{block}\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.stdout.is_empty(),
            "README block printed nothing:\n{block}"
        );
        ran += 1;
    }
    assert!(ran >= 2, "README has {ran} runnable blocks");
}

#[test]
fn the_readmes_and_docs_links_lead_to_files() {
    let mut pages = vec![PathBuf::from("README.md")];
    for entry in std::fs::read_dir(repo().join("docs")).unwrap_or_else(|e| panic!("docs/: {e}")) {
        let path = entry.unwrap_or_else(|e| panic!("docs/: {e}")).path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path.strip_prefix(repo()).unwrap_or(&path).to_path_buf());
        }
    }
    for page in pages {
        let text = read(&page.to_string_lossy());
        let dir = page.parent().unwrap_or(Path::new(""));
        for link in text.split("](").skip(1) {
            let target = link.split(')').next().unwrap_or_default();
            let file = target.split('#').next().unwrap_or_default();
            if file.is_empty() || file.contains("://") || file.starts_with("mailto:") {
                continue;
            }
            assert!(
                repo().join(dir).join(file).exists(),
                "{} links to {target}, which does not exist",
                page.display()
            );
        }
    }
}
