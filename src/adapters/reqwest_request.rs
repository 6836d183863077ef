//! An `http::Request` made into reqwest's own, with the URL of the last one kept per thread.
//!
//! reqwest sends its own `Request`, whose URL is a `Url`; its conversion from an
//! `http::Request` writes the URI out and parses it again, and that parse (with the host's
//! IDNA processing) was the largest single cost of an API call the client adds to raw
//! reqwest's: the `api_throughput` bench measured 93–95 % of raw reqwest's throughput with
//! it. API clients call the same URLs again and again, so each thread keeps the last URI it
//! converted, as written, and once that URI comes a second time in a row, its `Url`: a
//! request to that URI then takes a copy of the `Url` (one allocation) instead of a parse.
//! Any other URI is parsed as reqwest would, and becomes the one kept; its `Url` is not
//! copied to be kept until it comes again, so that calls to a new URL each time (an id in
//! the path) pay no copy for nothing. Only the URL is kept: never a header (the token travels
//! in one) nor a body.

use std::cell::RefCell;

use http::Uri;
use reqwest::Url;

thread_local! {
    /// The last URI this thread converted, and its URL once it came twice in a row.
    static LAST: RefCell<Option<Converted>> = const { RefCell::new(None) };
}

/// A URI as written — `scheme://authority`, the path, `?query` — and the URL it parses to.
struct Converted {
    written: String,
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

/// The URL of an absolute `uri`: a copy of the one this thread keeps when `uri` is written
/// the same, otherwise parsed (and `uri` kept, its URL too when it came before). `None` when
/// it has no scheme or authority, or does not parse.
fn url_of(uri: &Uri) -> Option<Url> {
    let pieces = Pieces::of(uri)?;
    let again = LAST.with(|last| {
        let mut last = last.try_borrow_mut().ok()?;
        let last = last.as_mut().filter(|last| pieces.spell(&last.written))?;
        Some(match &last.url {
            Some(url) => Some(url.clone()),
            None => {
                let url = Url::parse(&last.written).ok();
                last.url.clone_from(&url);
                url
            }
        })
    });
    if let Some(url) = again {
        return url;
    }
    let written = pieces.written();
    let url = Url::parse(&written).ok()?;
    LAST.with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            *last = Some(Converted { written, url: None });
        }
    });
    Some(url)
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
        let mut written = String::with_capacity(
            self.scheme.len() + 3 + self.authority.len() + self.path.len() + query_len,
        );
        written.push_str(self.scheme);
        written.push_str("://");
        written.push_str(self.authority);
        written.push_str(self.path);
        if let Some(query) = self.query {
            written.push('?');
            written.push_str(query);
        }
        written
    }

    /// Whether `written` is these pieces written out, byte for byte.
    fn spell(&self, written: &str) -> bool {
        let rest = written
            .strip_prefix(self.scheme)
            .and_then(|rest| rest.strip_prefix("://"))
            .and_then(|rest| rest.strip_prefix(self.authority))
            .and_then(|rest| rest.strip_prefix(self.path));
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

    /// The URL this thread keeps.
    fn kept_url() -> Option<String> {
        LAST.with(|last| {
            let last = last.borrow();
            Some(last.as_ref()?.url.as_ref()?.to_string())
        })
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
