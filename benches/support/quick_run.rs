//! Whether a benchmark binary was started for a quick smoke run.

/// Whether this is a quick run: `--test` (CI's smoke pass) or `cargo test`, which passes no
/// `--bench`. Counted loops are then shortened so that everything runs in about a second.
pub fn is_quick_run() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench")
}
