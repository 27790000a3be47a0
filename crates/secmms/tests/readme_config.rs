//! The configuration example in README.md is valid for the current schema.

#[test]
fn readme_configuration_example_parses() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme
        .split("## Configuration")
        .nth(1)
        .expect("README has a Configuration section");
    let block = section
        .split("```toml")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a toml block");
    let cfg =
        secmms::Config::from_toml(block).unwrap_or_else(|e| panic!("README example invalid: {e}"));
    assert_eq!(cfg.server.max_associations, 1000);
    assert_eq!(cfg.osi.tpdu_size, Some(2048));
}
