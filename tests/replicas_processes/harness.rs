//! A small stand-in for libtest, for a test binary that is also the replica program: the
//! usual filters, `--list`, `--ignored`, `--skip` and `--exact`; other libtest options
//! (`--nocapture`, `--test-threads`, …) are accepted and mean nothing here (the scenarios
//! run one after another and print as they go).

use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

/// A named scenario.
pub type Test<E> = (&'static str, fn(&E));

/// Runs the tests `args` select, with the environment `setup` makes (once, only if a test
/// runs); exits with 101 if any failed, as libtest does.
pub fn main<E>(args: &[String], tests: &[Test<E>], setup: impl FnOnce() -> E) {
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let (mut list, mut exact, mut ignored) = (false, false, false);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--list" => list = true,
            "--exact" => exact = true,
            "--ignored" => ignored = true,
            "--skip" => skips.extend(args.next().cloned()),
            // Options with a value given apart: the value is not a filter.
            "--test-threads" | "--format" | "--color" | "--logfile" => {
                args.next();
            }
            other if other.starts_with('-') => {}
            filter => filters.push(filter.to_owned()),
        }
    }
    let matches = |name: &str, pattern: &str| {
        if exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    };
    let selected: Vec<_> = tests
        .iter()
        .filter(|_| !ignored)
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| matches(name, f)))
        .filter(|(name, _)| !skips.iter().any(|s| matches(name, s)))
        .collect();
    if list {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return;
    }
    println!("\nrunning {} tests", selected.len());
    if selected.is_empty() {
        println!("\ntest result: ok. 0 passed; 0 failed\n");
        return;
    }
    let began = Instant::now();
    let env = setup();
    let mut failed = Vec::new();
    for (name, test) in &selected {
        println!("\n---- {name} ----");
        let started = Instant::now();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| test(&env)));
        let verdict = if outcome.is_ok() { "ok" } else { "FAILED" };
        println!(
            "test {name} ... {verdict} ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    drop(env);
    let passed = selected.len() - failed.len();
    if failed.is_empty() {
        println!(
            "\ntest result: ok. {passed} passed; 0 failed; finished in {:.1} s\n",
            began.elapsed().as_secs_f64()
        );
    } else {
        println!(
            "\nfailures: {failed:?}\ntest result: FAILED. {passed} passed; {} failed; finished in {:.1} s\n",
            failed.len(),
            began.elapsed().as_secs_f64()
        );
        std::process::exit(101);
    }
}
