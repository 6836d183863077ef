//! Settings for the examples that also take switches (flags without a value): `--name value`
//! or `--name=value` on the command line, or `TOKENFLOW_NAME` in the environment; a switch is
//! `--name` alone, or `TOKENFLOW_NAME=1`.

pub struct Settings {
    pairs: Vec<(String, String)>,
    switches: Vec<String>,
}

impl Settings {
    /// Reads the command line; the names in `switches` take no value.
    pub fn parse(switches: &[&str]) -> Result<Settings, String> {
        let mut pairs = Vec::new();
        let mut on = Vec::new();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let Some(name) = arg.strip_prefix("--") else {
                return Err(format!(
                    "unexpected argument {arg:?}: settings are --name value"
                ));
            };
            if let Some((name, value)) = name.split_once('=') {
                pairs.push((name.to_owned(), value.to_owned()));
            } else if switches.contains(&name) {
                on.push(name.to_owned());
            } else {
                let value = args
                    .next()
                    .ok_or_else(|| format!("--{name} needs a value"))?;
                pairs.push((name.to_owned(), value));
            }
        }
        Ok(Settings {
            pairs,
            switches: on,
        })
    }

    /// The value of `--name`, or of `TOKENFLOW_NAME` (upper case, `-` as `_`).
    pub fn get(&self, name: &str) -> Option<String> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(variable(name)).ok())
            .filter(|v| !v.is_empty())
    }

    /// `--name`, or `default` when neither flag nor variable is set.
    pub fn get_or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    /// `--name`, or an error saying how to give it.
    pub fn require(&self, name: &str) -> Result<String, String> {
        self.get(name).ok_or_else(|| {
            format!(
                "--{name} (or {}) is required with --token-endpoint",
                variable(name)
            )
        })
    }

    /// Whether the switch `--name` is on (or `TOKENFLOW_NAME` is `1`, `true` or `yes`).
    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
            || std::env::var(variable(name))
                .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
    }
}

fn variable(name: &str) -> String {
    format!("TOKENFLOW_{}", name.to_uppercase().replace('-', "_"))
}
