//! The store of the "Writing a store" guide (`examples/custom_store/`) passes the store
//! test kit, with the test the guide shows, verbatim.

#[allow(dead_code)]
#[path = "../examples/custom_store/store.rs"]
mod store;

#[path = "../examples/custom_store/kit.rs"]
mod kit;

/// The guide shows `kit.rs` as it is, so its code is what this test runs.
#[test]
fn the_guide_shows_the_test_that_runs() {
    let readme = include_str!("../docs/writing-a-store.md");
    let kit = include_str!("../examples/custom_store/kit.rs");
    let start = readme
        .find("```rust\n// The store test kit on `MapStore`")
        .expect("the guide shows examples/custom_store/kit.rs");
    let block = &readme[start + "```rust\n".len()..];
    let block = &block[..block.find("```").expect("the block ends")];
    // Lines starting with `# ` are hidden: they stand in for the test's crate.
    let shown: String = block
        .lines()
        .filter(|line| !line.starts_with("# ") && *line != "#")
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(
        shown, kit,
        "the guide's copy of kit.rs differs from the file"
    );
}
