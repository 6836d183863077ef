//! The first API origin a client approved, remembered so that later requests to it skip the
//! check.
//!
//! Every `send()` checks where the token is about to go ([`Config::check_api_request`]): the
//! scheme, the host (a loopback address for cleartext), the port and the allowed origins. That
//! takes the URI's authority apart and, for `http`, parses the host as an IP address — about
//! 700 instructions, a few percent of a whole API call over a pooled connection. Most clients
//! talk to one API, so the first approved scheme and authority are kept, exactly as written,
//! and a request with the same two strings is approved by comparing them. The check depends
//! only on those two and on the configuration, which does not change; any other request is
//! checked in full.
//!
//! [`Config::check_api_request`]: crate::Config::check_api_request

use std::sync::OnceLock;

use http::Uri;

/// The first approved `scheme://authority`, once there is one.
#[derive(Debug, Default)]
pub(crate) struct ApprovedOrigin {
    first: OnceLock<SchemeAndAuthority>,
}

#[derive(Debug, PartialEq, Eq)]
struct SchemeAndAuthority {
    scheme: Box<str>,
    authority: Box<str>,
}

impl SchemeAndAuthority {
    fn of(uri: &Uri) -> Option<SchemeAndAuthority> {
        Some(SchemeAndAuthority {
            scheme: uri.scheme_str()?.into(),
            authority: uri.authority()?.as_str().into(),
        })
    }

    /// Whether `uri` has this scheme and authority, byte for byte.
    #[inline]
    fn is_that_of(&self, uri: &Uri) -> bool {
        uri.scheme_str() == Some(&*self.scheme)
            && uri.authority().map(|authority| authority.as_str()) == Some(&*self.authority)
    }
}

impl ApprovedOrigin {
    /// `Ok` when `uri` has the scheme and authority approved first; otherwise what `check`
    /// says, remembering `uri`'s when it is the first approved.
    #[inline]
    pub(crate) fn check<E>(
        &self,
        uri: &Uri,
        check: impl FnOnce(&Uri) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.first.get().is_some_and(|first| first.is_that_of(uri)) {
            return Ok(());
        }
        check(uri)?;
        if self.first.get().is_none() {
            if let Some(approved) = SchemeAndAuthority::of(uri) {
                // Another thread may have approved another origin meanwhile: either is fine.
                let _ = self.first.set(approved);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    /// Checks `text` through `approved`, saying whether the full check ran and its outcome.
    fn check(approved: &ApprovedOrigin, text: &str, verdict: bool) -> (bool, bool) {
        let ran = Cell::new(false);
        let outcome = approved.check(&uri(text), |_| {
            ran.set(true);
            if verdict { Ok(()) } else { Err(()) }
        });
        (ran.get(), outcome.is_ok())
    }

    #[test]
    fn the_first_approved_origin_is_approved_again_without_the_check() {
        let approved = ApprovedOrigin::default();
        assert_eq!(
            check(&approved, "https://api.example/a", true),
            (true, true)
        );
        // Same scheme and authority, other path and query: no check, approved.
        assert_eq!(
            check(&approved, "https://api.example/b?c=d", false),
            (false, true)
        );
    }

    #[test]
    fn anything_else_is_checked_in_full() {
        let approved = ApprovedOrigin::default();
        check(&approved, "https://api.example/a", true);
        for other in [
            "http://api.example/a",
            "https://api.example:8443/a",
            "https://API.example/a",
            "https://user@api.example/a",
            "https://api.example.evil/a",
            "https://evil.example/a",
        ] {
            assert_eq!(check(&approved, other, false), (true, false), "{other}");
        }
    }

    #[test]
    fn a_refused_origin_is_never_remembered() {
        let approved = ApprovedOrigin::default();
        assert_eq!(
            check(&approved, "http://api.example/a", false),
            (true, false)
        );
        assert_eq!(
            check(&approved, "http://api.example/a", false),
            (true, false)
        );
    }
}
