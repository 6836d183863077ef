//! Both clients say what they hold — through `token_info()` — without a secret, and without
//! starting a token request: nothing before a login, the grant, both tokens' presence, the
//! scope and the provider's extra fields after one, and nothing again after a logout.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use http::{Request, Response};
use tokenflow::adapters::blocking::BlockingClient;
use tokenflow::adapters::tokio::AsyncClient;
use tokenflow::{Config, Credentials, GrantKind, TokenInfo, TransportError};

const ACCESS: &str = "AT-must-not-show";
const REFRESH: &str = "RT-must-not-show";
const PASSWORD: &str = "pw-must-not-show";

fn config() -> Config {
    Config::builder("https://id.example/token", "client")
        .client_secret("secret-must-not-show")
        .scope("api offline_access")
        .build()
        .unwrap()
}

/// A token endpoint answering every request with the same token set, counting requests.
fn token_endpoint(
    count: Arc<AtomicUsize>,
) -> impl Fn(Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError> + Clone {
    move |_request| {
        count.fetch_add(1, Ordering::SeqCst);
        let body = format!(
            r#"{{"access_token":"{ACCESS}","token_type":"Bearer","expires_in":3600,"refresh_token":"{REFRESH}","scope":"api","status":"active"}}"#
        );
        Ok(Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(body.into_bytes())
            .unwrap())
    }
}

fn assert_describes_the_login(info: &TokenInfo) {
    assert_eq!(info.grant, GrantKind::Password);
    let access = info.access_token.expect("an access token is held");
    assert_eq!(access.generation.get(), 1);
    assert!(!access.refused);
    assert!(info.refresh_token.is_some(), "a refresh token is held");
    assert_eq!(
        info.scope.as_ref().map(|s| s.to_string()),
        Some("api".into())
    );
    assert_eq!(info.extra.get("status"), Some(&serde_json::json!("active")));
    let shown = format!("{info:?}");
    for secret in [ACCESS, REFRESH, PASSWORD, "secret-must-not-show"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

#[test]
fn the_blocking_client_says_what_it_holds_without_a_secret() {
    let requests = Arc::new(AtomicUsize::new(0));
    let client = BlockingClient::builder(config(), token_endpoint(Arc::clone(&requests)))
        .build()
        .unwrap();
    assert!(client.token_info().is_none(), "nothing before a login");

    client
        .login(Credentials::password("joe", PASSWORD))
        .unwrap();
    let info = client.token_info().expect("tokens after a login");
    assert_describes_the_login(&info);
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "only the login's request"
    );

    client.logout().unwrap();
    assert!(client.token_info().is_none(), "nothing after a logout");
}

#[tokio::test]
async fn the_async_client_says_what_it_holds_without_a_secret() {
    let requests = Arc::new(AtomicUsize::new(0));
    let endpoint = token_endpoint(Arc::clone(&requests));
    let transport = move |request: Request<Vec<u8>>, _deadline: Instant, _max_body: usize| {
        let answer = endpoint(request);
        async move { answer }
    };
    let client = AsyncClient::builder(config(), transport).build().unwrap();
    assert!(client.token_info().is_none(), "nothing before a login");

    client
        .login(Credentials::password("joe", PASSWORD))
        .await
        .unwrap();
    let info = client.token_info().expect("tokens after a login");
    assert_describes_the_login(&info);
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "only the login's request"
    );

    client.logout().await.unwrap();
    assert!(client.token_info().is_none(), "nothing after a logout");
}
