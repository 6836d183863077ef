//! An `http::Request` made into reqwest's own, its URL made from what the thread kept of the
//! last one.
//!
//! reqwest sends its own `Request`, whose URL is a `Url`; its conversion from an
//! `http::Request` writes the URI out and parses it again, and that parse (the host's above
//! all: about 4 800 of its 6 400 instructions for `127.0.0.1`) was the largest single cost of
//! an API call the client adds to raw reqwest's. API clients call one API again and again,
//! so each thread keeps the last URI it converted, as written, with the URL of its origin
//! (`scheme://authority`): a URI with the same origin takes a copy of that URL with its own
//! path and query set (the path and query parsed as a whole parse would, the host not
//! parsed again), and once the same URI comes a second time in a row, its whole URL is kept
//! and copied out from then on. A URI with another origin is parsed as reqwest would, and
//! becomes the one kept. Only the URL is kept: never a header (the token travels in one)
//! nor a body.

use std::cell::RefCell;

use http::Uri;
use reqwest::Url;

thread_local! {
    /// What this thread keeps of the last URI it converted.
    static KEPT: RefCell<Option<Kept>> = const { RefCell::new(None) };
}

/// The origin's URL is kept with a placeholder path this long: a copy of a URL is exactly as
/// long as it, so the copy a call's path and query are set in has room for them (up to this
/// length) instead of growing once or twice as they are written, each time a reallocation
/// that showed in the throughput of calls to a new URL each time.
const ROOM: usize = 160;

/// The last URI converted, as written — `scheme://authority`, the path, `?query` — with the
/// URL of its origin, and its own URL once it came twice in a row.
struct Kept {
    written: String,
    /// How long `scheme://authority` is in `written`.
    origin_len: usize,
    /// The origin's URL, with a placeholder path [`ROOM`] long and no query.
    origin: Url,
    url: Option<Url>,
}

/// `request` as reqwest's request.
pub(crate) fn reqwest_request(
    request: http::Request<Vec<u8>>,
) -> Result<reqwest::Request, reqwest::Error> {
    // The conversion by hand leaves the extensions behind (reqwest keeps them to itself), so
    // a request carrying any takes reqwest's own.
    if !request.extensions().is_empty() {
        return reqwest::Request::try_from(request);
    }
    let Some(url) = url_of(request.uri()) else {
        return reqwest::Request::try_from(request);
    };
    let (parts, body) = request.into_parts();
    let mut converted = reqwest::Request::new(parts.method, url);
    *converted.headers_mut() = parts.headers;
    *converted.version_mut() = parts.version;
    *converted.body_mut() = Some(body.into());
    Ok(converted)
}

/// The URL of an absolute `uri`, the one `Url::parse` makes of it written out: made from
/// what this thread keeps when `uri` has the same origin as the last one, parsed otherwise
/// (and kept). `None` when it has no scheme or authority, or does not parse.
fn url_of(uri: &Uri) -> Option<Url> {
    let pieces = Pieces::of(uri)?;
    // A thread whose storage is already gone (a call made from a thread-local's destructor)
    // parses every URI.
    KEPT.try_with(|kept| {
        let Ok(mut kept) = kept.try_borrow_mut() else {
            return Url::parse(&pieces.written()).ok();
        };
        if let Some(kept) = kept.as_mut().filter(|kept| kept.has_origin_of(&pieces)) {
            return Some(kept.url_for(&pieces));
        }
        let written = pieces.written();
        let url = Url::parse(&written).ok()?;
        let mut origin = url.clone();
        origin.set_path(&format!("/{}", "x".repeat(ROOM - 1)));
        origin.set_query(None);
        *kept = Some(Kept {
            origin_len: pieces.origin_len(),
            written,
            origin,
            url: None,
        });
        Some(url)
    })
    .unwrap_or_else(|_| Url::parse(&pieces.written()).ok())
}

impl Kept {
    fn has_origin_of(&self, pieces: &Pieces<'_>) -> bool {
        self.written
            .get(..self.origin_len)
            .is_some_and(|origin| pieces.spell_origin(origin))
    }

    /// The URL of `pieces`, which have this origin.
    fn url_for(&mut self, pieces: &Pieces<'_>) -> Url {
        let same = self
            .written
            .get(self.origin_len..)
            .is_some_and(|tail| pieces.spell_tail(tail));
        if !same {
            self.written.clear();
            pieces.write_into(&mut self.written);
            self.url = None;
            return pieces.joined_to(&self.origin);
        }
        match &self.url {
            Some(url) => url.clone(),
            None => {
                let url = pieces.joined_to(&self.origin);
                self.url = Some(url.clone());
                url
            }
        }
    }
}

/// The pieces of an absolute URI, in the order they are written.
struct Pieces<'a> {
    scheme: &'a str,
    authority: &'a str,
    path: &'a str,
    query: Option<&'a str>,
}

impl<'a> Pieces<'a> {
    fn of(uri: &'a Uri) -> Option<Pieces<'a>> {
        Some(Pieces {
            scheme: uri.scheme_str()?,
            authority: uri.authority()?.as_str(),
            path: uri.path(),
            query: uri.query(),
        })
    }

    /// The URI written out, as `Uri`'s `Display` writes it (and reqwest parses it).
    fn written(&self) -> String {
        let query_len = self.query.map_or(0, |query| query.len() + 1);
        let mut written = String::with_capacity(self.origin_len() + self.path.len() + query_len);
        self.write_into(&mut written);
        written
    }

    fn write_into(&self, written: &mut String) {
        written.push_str(self.scheme);
        written.push_str("://");
        written.push_str(self.authority);
        written.push_str(self.path);
        if let Some(query) = self.query {
            written.push('?');
            written.push_str(query);
        }
    }

    /// How long `scheme://authority` is.
    fn origin_len(&self) -> usize {
        self.scheme.len() + 3 + self.authority.len()
    }

    /// Whether `origin` is `scheme://authority`, byte for byte.
    fn spell_origin(&self, origin: &str) -> bool {
        origin
            .strip_prefix(self.scheme)
            .and_then(|rest| rest.strip_prefix("://"))
            == Some(self.authority)
    }

    /// `origin`'s URL with this path and query, parsed as `Url::parse` parses them.
    fn joined_to(&self, origin: &Url) -> Url {
        let mut url = origin.clone();
        url.set_path(self.path);
        url.set_query(self.query);
        url
    }

    /// Whether `tail` is the path and `?query` written out, byte for byte.
    fn spell_tail(&self, tail: &str) -> bool {
        let rest = tail.strip_prefix(self.path);
        match (rest, self.query) {
            (Some(rest), Some(query)) => rest.strip_prefix('?') == Some(query),
            (Some(rest), None) => rest.is_empty(),
            (None, _) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Pieces<'_> {
        /// Whether `written` is these pieces written out, byte for byte: what the thread's
        /// kept URI is checked by, its origin and then its tail.
        fn spell(&self, written: &str) -> bool {
            let origin_len = self.origin_len();
            match (written.get(..origin_len), written.get(origin_len..)) {
                (Some(origin), Some(tail)) => self.spell_origin(origin) && self.spell_tail(tail),
                _ => false,
            }
        }
    }

    const URIS: [&str; 8] = [
        "https://api.example/v1/items?page=2",
        "https://API.Example:8443/v1/items",
        "http://127.0.0.1:8080/",
        "http://127.0.0.1:8080",
        "https://user:pw@api.example/a%20b?q=%C3%A9&x",
        "https://api.example/a/../b/./c",
        "https://[::1]:9000/x?",
        "https://xn--bcher-kva.example/b%C3%BCcher",
    ];

    #[test]
    fn a_uri_is_written_as_its_display_writes_it() {
        for text in URIS {
            let uri: Uri = text.parse().unwrap();
            let pieces = Pieces::of(&uri).unwrap();
            assert_eq!(pieces.written(), uri.to_string(), "{text}");
            assert!(pieces.spell(&uri.to_string()), "{text}");
        }
    }

    #[test]
    fn the_url_is_the_one_reqwest_would_parse_whether_kept_or_not() {
        for _ in 0..2 {
            for text in URIS {
                let uri: Uri = text.parse().unwrap();
                let expected = Url::parse(&uri.to_string()).unwrap();
                assert_eq!(url_of(&uri), Some(expected.clone()), "{text}");
                // The second time parsed from what is kept, and the URL kept; the third
                // time the thread's copy.
                assert_eq!(url_of(&uri), Some(expected.clone()), "{text}");
                assert!(kept_url().is_some(), "{text}");
                assert_eq!(url_of(&uri), Some(expected), "{text}");
            }
        }
    }

    #[test]
    fn a_url_is_kept_only_once_its_uri_comes_again() {
        let first: Uri = "https://api.example/items/1".parse().unwrap();
        let second: Uri = "https://api.example/items/2".parse().unwrap();
        url_of(&first);
        assert_eq!(kept_url(), None);
        url_of(&second);
        assert_eq!(kept_url(), None, "another URI replaces the one kept");
        url_of(&second);
        assert_eq!(kept_url().as_deref(), Some("https://api.example/items/2"));
        url_of(&first);
        assert_eq!(kept_url(), None);
    }

    /// The whole URL this thread keeps.
    fn kept_url() -> Option<String> {
        KEPT.with(|kept| {
            let kept = kept.borrow();
            Some(kept.as_ref()?.url.as_ref()?.to_string())
        })
    }

    /// The origin this thread keeps, its URL written up to the path.
    fn kept_origin() -> Option<String> {
        KEPT.with(|kept| {
            let kept = kept.borrow();
            let origin = &kept.as_ref()?.origin;
            Some(origin.as_str().strip_suffix(origin.path())?.to_owned())
        })
    }

    #[test]
    fn a_uri_of_the_same_origin_is_joined_to_the_origin_kept() {
        let first: Uri = "https://u:p@API.example:8443/items/1?x=1".parse().unwrap();
        url_of(&first);
        assert_eq!(
            kept_origin().as_deref(),
            Some("https://u:p@api.example:8443")
        );
        for text in [
            "https://u:p@API.example:8443/items/2",
            "https://u:p@API.example:8443/a/./b/../c?q=%41&r=é",
            "https://u:p@API.example:8443",
            "https://u:p@API.example:8443/?",
            "https://u:p@API.example:8443/%2e%2E/x",
        ] {
            let uri: Uri = text.parse().unwrap();
            assert_eq!(url_of(&uri), Url::parse(&uri.to_string()).ok(), "{text}");
            assert_eq!(
                kept_origin().as_deref(),
                Some("https://u:p@api.example:8443"),
                "{text} has the same origin"
            );
        }
        // The same host written otherwise is another origin as written: parsed anew.
        let other: Uri = "https://u:p@api.example:8443/items/1".parse().unwrap();
        assert_eq!(url_of(&other), Url::parse(&other.to_string()).ok());
    }

    proptest::proptest! {
        /// Whatever the sequence of URIs a thread converts, each URL is the one reqwest's
        /// own conversion parses (`Url::parse` of the URI written out).
        #[test]
        fn every_url_is_the_one_a_whole_parse_makes(
            uris in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "http://127.0.0.1:8080",
                        "https://api.example",
                        "https://API.example:443",
                        "https://u:p%40@api.example",
                        "http://[::1]:9000",
                        "https://xn--bcher-kva.example",
                    ]),
                    // Most of what `Uri` takes in a path: dot segments, `%`, backslashes,
                    // quotes, brackets, non-ASCII; in a query `#` as well.
                    "(/(\\.|\\.\\.|%2e|[a-zA-Z0-9._~%!$&'()*+,;=:@\\\\^`{}|\\[\\]\"<>é-]{0,6})){0,4}",
                    proptest::option::of("[a-zA-Z0-9._~%!$&'()*+,;=:@/?^`{}|\\\\\\[\\]\"<>é#-]{0,12}"),
                ),
                1..8,
            )
        ) {
            for (origin, path, query) in uris {
                let text = match query {
                    Some(query) => format!("{origin}{path}?{query}"),
                    None => format!("{origin}{path}"),
                };
                let Ok(uri) = text.parse::<Uri>() else { continue };
                let expected = Url::parse(&uri.to_string()).ok();
                proptest::prop_assert_eq!(url_of(&uri), expected.clone(), "{}", text);
                // Once more: the same URI again, then from the whole URL kept.
                proptest::prop_assert_eq!(url_of(&uri), expected.clone(), "{}", text);
                proptest::prop_assert_eq!(url_of(&uri), expected, "{}", text);
            }
        }
    }

    #[test]
    fn no_other_uri_matches_what_is_kept() {
        let kept: Uri = "https://api.example/v1/items?page=2".parse().unwrap();
        let written = Pieces::of(&kept).unwrap().written();
        for other in [
            "http://api.example/v1/items?page=2",
            "https://api.example:443/v1/items?page=2",
            "https://API.example/v1/items?page=2",
            "https://api.example/v1/items?page=3",
            "https://api.example/v1/items?page=2&x",
            "https://api.example/v1/items",
            "https://api.example/v1/item?page=2",
            "https://api.example/v1/items/?page=2",
            "https://u@api.example/v1/items?page=2",
        ] {
            let uri: Uri = other.parse().unwrap();
            assert!(!Pieces::of(&uri).unwrap().spell(&written), "{other}");
        }
    }

    #[test]
    fn the_request_keeps_everything_but_the_uri_as_it_came() {
        let request = http::Request::post("https://api.example/v1/items?x=1")
            .version(http::Version::HTTP_11)
            .header("content-type", "application/json")
            .header("x-trace", "a")
            .header("x-trace", "b")
            .body(b"{}".to_vec())
            .unwrap();
        let converted = reqwest_request(request).unwrap();
        assert_eq!(converted.method(), http::Method::POST);
        assert_eq!(converted.url().as_str(), "https://api.example/v1/items?x=1");
        assert_eq!(converted.version(), http::Version::HTTP_11);
        assert_eq!(converted.headers()["content-type"], "application/json");
        assert_eq!(converted.headers().get_all("x-trace").iter().count(), 2);
        assert_eq!(
            converted.body().and_then(|body| body.as_bytes()),
            Some(&b"{}"[..])
        );
    }

    #[test]
    fn a_request_with_extensions_keeps_them_through_reqwest_s_own_conversion() {
        #[derive(Clone, Debug, PartialEq)]
        struct Marker(u8);
        let mut request = http::Request::get("https://api.example/")
            .body(Vec::new())
            .unwrap();
        request.extensions_mut().insert(Marker(7));
        let converted = reqwest_request(request).unwrap();
        let back = http::Request::try_from(converted).unwrap();
        assert_eq!(back.extensions().get::<Marker>(), Some(&Marker(7)));
    }
}
