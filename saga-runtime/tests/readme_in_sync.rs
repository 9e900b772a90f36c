//! The README's "Embed it" section shows `examples/parcel.rs` as it is: the copy must not drift.
//! `UPDATE_DOCS=1 cargo test -p saga-runtime --test readme_in_sync` rewrites it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

const BEGIN: &str = "<!-- parcel-example:begin -->\n```rust\n";
const END: &str = "```\n<!-- parcel-example:end -->";

#[test]
fn the_readme_shows_the_parcel_example_as_it_is() {
    let crate_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme_path = crate_dir.join("../README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let example = std::fs::read_to_string(crate_dir.join("examples/parcel.rs")).unwrap();
    let start = readme
        .find(BEGIN)
        .expect("README.md lacks the parcel example's begin marker");
    let end = start
        + readme[start..]
            .find(END)
            .expect("README.md lacks the end marker");
    let shown = &readme[start + BEGIN.len()..end];
    if shown == example {
        return;
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let updated = format!(
            "{}{example}{}",
            &readme[..start + BEGIN.len()],
            &readme[end..]
        );
        std::fs::write(&readme_path, updated).unwrap();
        return;
    }
    panic!("README.md's parcel example differs from examples/parcel.rs; run with UPDATE_DOCS=1");
}
