//! The origin of a URL (RFC 6454 §4): its scheme, host and port, which is what decides where a
//! request, and the credentials it carries, ends up.

use std::fmt;

use http::Uri;

/// The longest host kept in an [`Origin`] shown in an error: enough for any real host name,
/// short enough that a hostile `Location` cannot flood a log.
const MAX_SHOWN_HOST: usize = 100;

/// An `http` or `https` origin: scheme, host (lowercase) and port, the default port filled in,
/// so that `https://API.example`, `https://api.example/` and `https://api.example:443` are
/// the same origin. User information, path, query and fragment are not part of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    https: bool,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of `uri`, when it is an absolute `http` or `https` URL with a host.
    pub fn of(uri: &Uri) -> Option<Origin> {
        OriginOf::uri(uri).map(|origin| origin.to_owned())
    }

    /// The origin of `url`, when it parses as an absolute `http` or `https` URL with a host.
    pub fn parse(url: &str) -> Option<Origin> {
        Origin::of(&url.parse().ok()?)
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host, lowercase; an IPv6 address keeps its brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, the scheme's default when the URL named none.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn default_port(&self) -> u16 {
        if self.https { 443 } else { 80 }
    }
}

/// The origin of a URI, borrowed from it: what is checked on every API call, where the owned
/// [`Origin`] (a lowercase copy of the host) would cost an allocation per call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OriginOf<'a> {
    pub(crate) https: bool,
    /// As written in the URI: compare it ignoring ASCII case.
    pub(crate) host: &'a str,
    pub(crate) port: u16,
}

impl<'a> OriginOf<'a> {
    /// The origin of `uri`, when it is an absolute `http` or `https` URL with a host.
    pub(crate) fn uri(uri: &'a Uri) -> Option<OriginOf<'a>> {
        let https = match uri.scheme_str()? {
            scheme if scheme.eq_ignore_ascii_case("https") => true,
            scheme if scheme.eq_ignore_ascii_case("http") => false,
            _ => return None,
        };
        let authority = uri.authority()?;
        let host = authority.host();
        if host.is_empty() {
            return None;
        }
        let default_port = if https { 443 } else { 80 };
        Some(OriginOf {
            https,
            host,
            port: authority.port_u16().unwrap_or(default_port),
        })
    }

    /// Whether this is `origin`.
    pub(crate) fn is(&self, origin: &Origin) -> bool {
        self.https == origin.https
            && self.port == origin.port
            && self.host.eq_ignore_ascii_case(&origin.host)
    }

    /// The owned origin, host lowercased.
    pub(crate) fn to_owned(self) -> Origin {
        Origin {
            https: self.https,
            host: self.host.to_ascii_lowercase(),
            port: self.port,
        }
    }
}

/// `scheme://host` with `:port` when it is not the default; a host longer than 100 characters
/// is cut short with `…`.
impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.https { "https://" } else { "http://" })?;
        match self.host.char_indices().nth(MAX_SHOWN_HOST) {
            Some((cut, _)) => write!(f, "{}…", &self.host[..cut])?,
            None => f.write_str(&self.host)?,
        }
        if self.port != self.default_port() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports_and_case_are_normalised() {
        let plain = Origin::parse("https://API.example.com/v1?x=1").unwrap();
        assert_eq!(plain, Origin::parse("https://api.example.com:443").unwrap());
        assert_eq!(plain.to_string(), "https://api.example.com");
        assert_eq!(
            Origin::parse("http://api.example.com:80/").unwrap(),
            Origin::parse("http://api.example.com").unwrap()
        );
        assert_ne!(plain, Origin::parse("http://api.example.com").unwrap());
        assert_ne!(
            plain,
            Origin::parse("https://api.example.com:8443").unwrap()
        );
        assert_eq!(
            Origin::parse("http://127.0.0.1:8080/x")
                .unwrap()
                .to_string(),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn user_information_is_not_part_of_it() {
        let origin = Origin::parse("https://user:hunter2@api.example.com/").unwrap();
        assert_eq!(origin.to_string(), "https://api.example.com");
    }

    #[test]
    fn only_absolute_http_urls_have_one() {
        assert!(Origin::parse("/relative/path").is_none());
        assert!(Origin::parse("ftp://files.example.com/").is_none());
        assert!(Origin::parse("not a url").is_none());
    }

    #[test]
    fn a_borrowed_origin_is_the_owned_one() {
        let uri: Uri = "https://API.Example.com/v1".parse().unwrap();
        let borrowed = OriginOf::uri(&uri).unwrap();
        assert!(borrowed.is(&Origin::parse("https://api.example.com:443").unwrap()));
        assert!(!borrowed.is(&Origin::parse("http://api.example.com:443").unwrap()));
        assert!(!borrowed.is(&Origin::parse("https://api.example.com:8443").unwrap()));
        assert!(!borrowed.is(&Origin::parse("https://api.example.org").unwrap()));
        assert_eq!(borrowed.to_owned(), Origin::of(&uri).unwrap());
    }

    #[test]
    fn a_long_host_is_shown_cut_short() {
        let host = "a".repeat(300);
        let origin = Origin::parse(&format!("https://{host}.example/")).unwrap();
        let shown = origin.to_string();
        assert!(shown.chars().count() < 120, "{shown}");
        assert!(shown.ends_with('…'));
    }
}
