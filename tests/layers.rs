//! The layers of `src/` and the one direction their dependencies point
//! (docs/architecture.md): a module may use its own layer and the layers
//! below it, never one above.
//!
//! ```text
//! admin    the store admin CLI
//! attach   the macvlan plugin: ADD/DEL/CHECK/GC/STATUS, VLAN parents
//! ipam     addresses: config, allocator, store, stand-alone plugin, delegation
//! sys      side effects: netlink, netns, sysctl, files, log
//! cni      the protocol: env, config basics, types, versions, errors, dispatcher
//! ```
//!
//! Checked over the source text: every `crate::<layer>` path in a file of a
//! lower layer is a violation.

use std::fs;
use std::path::{Path, PathBuf};

/// Bottom to top.
const LAYERS: [&str; 5] = ["cni", "sys", "ipam", "attach", "admin"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The layers a source text refers to through `crate::<layer>`.
fn referenced_layers(text: &str) -> Vec<&'static str> {
    LAYERS
        .into_iter()
        .filter(|layer| {
            let needle = format!("crate::{layer}");
            text.match_indices(&needle).any(|(i, _)| {
                let after = text[i + needle.len()..].chars().next();
                !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
        })
        .collect()
}

#[test]
fn dependencies_point_down_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    let mut checked = 0;
    for (rank, layer) in LAYERS.iter().enumerate() {
        let mut files = Vec::new();
        rust_files(&src.join(layer), &mut files);
        assert!(!files.is_empty(), "src/{layer}/ has no Rust files");
        for file in files {
            let text = fs::read_to_string(&file).expect("read source");
            checked += 1;
            for used in referenced_layers(&text) {
                let used_rank = LAYERS.iter().position(|l| *l == used).unwrap_or(0);
                if used_rank > rank {
                    violations.push(format!(
                        "{} ({layer}) uses crate::{used}, a layer above it",
                        file.strip_prefix(&src).unwrap_or(&file).display()
                    ));
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} files checked");
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_check_sees_a_violation() {
    assert_eq!(referenced_layers("use crate::attach::config;"), ["attach"]);
    assert_eq!(
        referenced_layers("crate::sys::fs::x(); crate::cni::X"),
        ["cni", "sys"]
    );
    assert!(referenced_layers("use crate::attachment; // crate::systems").is_empty());
}
