//! Response bodies from the fuzz corpora, for tests that read them as the parser and as a
//! plain list of fields.

/// Every candidate body in the committed corpora of the fuzz targets that read responses:
/// each suffix of an input that starts at a brace (the `flow` target's inputs hold bodies
/// among other bytes).
pub(crate) fn corpus_bodies() -> Vec<Vec<u8>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus");
    let mut bodies = Vec::new();
    for target in ["token_response", "error_response", "flow"] {
        let entries = std::fs::read_dir(format!("{root}/{target}")).expect("a fuzz corpus");
        for entry in entries {
            let bytes = std::fs::read(entry.expect("a corpus entry").path()).expect("an input");
            for (start, _) in bytes.iter().enumerate().filter(|(_, b)| **b == b'{') {
                bodies.push(bytes[start..].to_vec());
            }
        }
    }
    assert!(
        bodies.len() > 100,
        "the corpora hold bodies ({} found)",
        bodies.len()
    );
    bodies
}
