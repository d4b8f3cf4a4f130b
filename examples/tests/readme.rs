//! The README's Rust snippet is the code `mcp_auth_examples::readme` compiles, character for
//! character: editing one without the other fails here.

/// The README's block after the "In your server" heading (fence excluded).
fn readme_block() -> String {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("## In your server\n\n```rust")
        .expect("README has an \"In your server\" Rust block");
    let code = &readme[start..];
    let code = &code[code.find('\n').unwrap() + 2..];
    let code = &code[code.find('\n').unwrap() + 1..];
    code[..code.find("```\n").expect("the block is closed")].to_owned()
}

/// The lines between the markers of `src/readme.rs`, one indentation level removed.
fn compiled_block() -> String {
    let source = include_str!("../src/readme.rs");
    let begin = source.find("// README BEGIN\n").expect("begin marker") + "// README BEGIN\n".len();
    let end = source[..source.find("// README END").expect("end marker")]
        .rfind('\n')
        .unwrap()
        + 1;
    source[begin..end]
        .lines()
        .map(|line| line.strip_prefix("    ").unwrap_or(line))
        .map(|line| format!("{line}\n"))
        .collect()
}

#[test]
fn the_readme_snippet_is_the_compiled_one() {
    let readme = readme_block();
    let compiled = compiled_block();
    assert!(readme.contains("RemoteAuthProvider::builder"), "{readme}");
    assert_eq!(
        readme, compiled,
        "README.md and examples/src/readme.rs differ"
    );
}
