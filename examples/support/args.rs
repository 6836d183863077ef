//! Settings for the examples: `--name value` on the command line, or `TOKENFLOW_NAME` in the
//! environment. With no `--token-endpoint`, the examples start the embedded server.

pub struct Args {
    pairs: Vec<(String, String)>,
}

impl Args {
    pub fn parse() -> Args {
        let mut pairs = Vec::new();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if let Some(name) = arg.strip_prefix("--") {
                let value = args.next().unwrap_or_default();
                pairs.push((name.to_owned(), value));
            }
        }
        Args { pairs }
    }

    /// The value of `--name`, or of `TOKENFLOW_NAME` (upper case, `-` as `_`).
    pub fn get(&self, name: &str) -> Option<String> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .or_else(|| {
                let var = format!("TOKENFLOW_{}", name.to_uppercase().replace('-', "_"));
                std::env::var(var).ok()
            })
    }

    /// `--name`, or `default` when neither flag nor variable is set.
    pub fn get_or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }
}
