//! Where `send` lets the access token go, in both adapters: never over cleartext `http://`
//! off loopback (RFC 6750 §5.3) unless the configuration opts in, and only to the configured
//! API origins when there are any. A refused request costs no IO at all: not even the token
//! request that would have preceded it.

#[path = "support/local_http.rs"]
mod local_http;

use std::time::Duration;

use http::Request;

use local_http::LocalServer;
use tokenflow::adapters::MemoryStore;
use tokenflow::adapters::blocking::{self, BlockingClient, UreqTransport};
use tokenflow::adapters::tokio::{self as async_adapter, AsyncClient, ReqwestTransport};
use tokenflow::{ApiRequestError, Config, Credentials, Origin};

/// A host that is not loopback; nothing may ever try to reach it.
const CLEARTEXT_API: &str = "http://api.example.invalid/meters?access_token=x";

fn config(home: &LocalServer) -> tokenflow::ConfigBuilder {
    Config::builder(home.url("/token"), "client")
        .client_secret("secret")
        .request_timeout(Duration::from_secs(5))
}

fn get(url: &str) -> Request<Vec<u8>> {
    Request::get(url).body(Vec::new()).unwrap()
}

fn assert_cleartext_refused(error: &ApiRequestError) {
    let expected = Origin::parse("http://api.example.invalid").unwrap();
    assert_eq!(
        error,
        &ApiRequestError::Cleartext { origin: expected },
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("over cleartext http"), "{message}");
    assert!(!message.contains("access_token"), "{message}");
}

fn assert_origin_refused(error: &ApiRequestError, other: &LocalServer) {
    let expected = Origin::parse(&other.origin()).unwrap();
    assert_eq!(
        error,
        &ApiRequestError::OriginNotAllowed { origin: expected },
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("not one of the configured API origins")
    );
}

#[test]
fn blocking_send_refuses_cleartext_off_loopback_before_any_io() {
    let home = LocalServer::tokens("AT-HOME");
    let client = BlockingClient::builder(config(&home).build().unwrap(), UreqTransport::new())
        .store(MemoryStore::new())
        .credentials(|| Some(Credentials::ClientCredentials))
        .build()
        .unwrap();
    match client.send(get(CLEARTEXT_API)) {
        Err(blocking::Error::ApiRequestRefused(error)) => assert_cleartext_refused(&error),
        other => panic!("{other:?}"),
    }
    assert_eq!(home.connections(), 0, "not even a token request");
}

#[test]
fn blocking_send_refuses_origins_not_allowed_before_any_io() {
    let home = LocalServer::tokens("AT-HOME");
    let api = LocalServer::start(200, Vec::new(), "{}".to_owned());
    let other = LocalServer::start(200, Vec::new(), "{}".to_owned());
    let config = config(&home)
        .allow_api_origin(api.origin())
        .build()
        .unwrap();
    let client = BlockingClient::builder(config, UreqTransport::new())
        .store(MemoryStore::new())
        .credentials(|| Some(Credentials::ClientCredentials))
        .build()
        .unwrap();
    match client.send(get(&other.url("/meters"))) {
        Err(blocking::Error::ApiRequestRefused(error)) => assert_origin_refused(&error, &other),
        result => panic!("{result:?}"),
    }
    assert_eq!(other.connections(), 0);
    assert_eq!(home.connections(), 0, "not even a token request");

    let response = client.send(get(&api.url("/meters"))).unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        api.received()[0].header("authorization"),
        Some("Bearer AT-HOME")
    );
}

#[tokio::test]
async fn async_send_refuses_cleartext_off_loopback_before_any_io() {
    let home = LocalServer::tokens("AT-HOME");
    let client = AsyncClient::builder(
        config(&home).build().unwrap(),
        ReqwestTransport::new().unwrap(),
    )
    .credentials(|| Some(Credentials::ClientCredentials))
    .build()
    .unwrap();
    match client.send(get(CLEARTEXT_API)).await {
        Err(async_adapter::Error::ApiRequestRefused(error)) => assert_cleartext_refused(&error),
        other => panic!("{other:?}"),
    }
    assert_eq!(home.connections(), 0, "not even a token request");
    client.shutdown().await;
}

#[tokio::test]
async fn async_send_refuses_origins_not_allowed_before_any_io() {
    let home = LocalServer::tokens("AT-HOME");
    let api = LocalServer::start(200, Vec::new(), "{}".to_owned());
    let other = LocalServer::start(200, Vec::new(), "{}".to_owned());
    let config = config(&home)
        .allow_api_origin(api.origin())
        .build()
        .unwrap();
    let client = AsyncClient::builder(config, ReqwestTransport::new().unwrap())
        .credentials(|| Some(Credentials::ClientCredentials))
        .build()
        .unwrap();
    match client.send(get(&other.url("/meters"))).await {
        Err(async_adapter::Error::ApiRequestRefused(error)) => {
            assert_origin_refused(&error, &other)
        }
        result => panic!("{result:?}"),
    }
    assert_eq!(other.connections(), 0);
    assert_eq!(home.connections(), 0, "not even a token request");

    let response = client.send(get(&api.url("/meters"))).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        api.received()[0].header("authorization"),
        Some("Bearer AT-HOME")
    );
    client.shutdown().await;
}
