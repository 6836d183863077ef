//! A renewal's answer that arrives after the flow gave up on the request still reaches the
//! flow, through either client: under the default strict reuse setting the renewal fails at
//! its deadline and the flow says a login is needed (the refresh token may be spent), and the
//! late answer — which holds the only
//! live successor of a rotated refresh token — is then adopted instead of being thrown away.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use http::{HeaderMap, Request, Response};
use tokenflow::adapters::Error;
use tokenflow::adapters::blocking::BlockingClient;
use tokenflow::adapters::tokio::AsyncClient;
use tokenflow::{
    Config, Credentials, FailureCause, GrantKind, LoginRequiredReason, TransportErrorKind,
};

/// How long the flow waits for a token response.
const TIMEOUT: Duration = Duration::from_millis(300);
/// How long after its deadline the renewal's answer arrives.
const LATE_BY: Duration = Duration::from_millis(400);

fn config() -> Config {
    Config::builder("https://id.example/token", "client")
        .client_secret("secret")
        .request_timeout(TIMEOUT)
        .build()
        .unwrap()
}

/// The token endpoint: answers request `n` with `AT-n`/`RT-n`. Its second request (the
/// renewal) is answered `TIMEOUT + LATE_BY` after it was sent.
struct Endpoint {
    requests: AtomicUsize,
}

impl Endpoint {
    /// The number of the request and how long its answer takes.
    fn next(&self) -> (usize, Duration) {
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let delay = if n == 2 {
            TIMEOUT + LATE_BY
        } else {
            Duration::ZERO
        };
        (n, delay)
    }

    fn answer(n: usize) -> Response<Vec<u8>> {
        let body = format!(
            r#"{{"access_token":"AT-{n}","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-{n}"}}"#
        );
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(body.into_bytes())
            .unwrap()
    }
}

fn endpoint() -> Arc<Endpoint> {
    Arc::new(Endpoint {
        requests: AtomicUsize::new(0),
    })
}

/// The renewal's caller hears that it timed out; the next caller, that a login is needed.
fn assert_timed_out(result: Result<Option<tokenflow::Bearer>, Error>) {
    match result {
        Err(Error::TokenRequest(error))
            if error.grant == GrantKind::RefreshToken
                && matches!(&error.cause, FailureCause::Transport(t) if t.kind() == TransportErrorKind::TimedOut) =>
            {}
        other => panic!("expected the renewal to time out, got {other:?}"),
    }
}

fn assert_may_be_spent(result: Result<tokenflow::Bearer, Error>) {
    match result {
        Err(Error::LoginRequired {
            reason: Some(LoginRequiredReason::RefreshTokenMayBeSpent),
        }) => {}
        other => panic!("expected a login to be required, got {other:?}"),
    }
}

fn assert_adopted(bearer: &tokenflow::Bearer, endpoint: &Endpoint) {
    assert_eq!(
        bearer.header_value().to_str().unwrap(),
        "Bearer AT-2",
        "the late answer's token"
    );
    assert_eq!(
        endpoint.requests.load(Ordering::SeqCst),
        2,
        "no request after the late answer"
    );
}

#[test]
fn the_blocking_client_hands_a_late_answer_to_the_flow() {
    let endpoint = endpoint();
    let server = Arc::clone(&endpoint);
    let transport = move |_request: Request<Vec<u8>>| {
        let (n, delay) = server.next();
        thread::sleep(delay);
        Ok(Endpoint::answer(n))
    };
    let client = BlockingClient::builder(config(), transport)
        .build()
        .unwrap();
    client.login(Credentials::password("joe", "pw")).unwrap();
    let first = client.bearer().unwrap();

    // The API refuses the token: the renewal goes out on this thread, and a second caller
    // sees the flow give up on it at its deadline.
    let renewing = client.clone();
    let refused = first.clone();
    let renewal = thread::spawn(move || renewing.unauthorized(&refused, &HeaderMap::new()));
    thread::sleep(TIMEOUT / 3);
    assert_timed_out(client.bearer().map(Some));
    assert_may_be_spent(client.bearer());
    let _ = renewal.join().unwrap();

    assert_adopted(&client.bearer().unwrap(), &endpoint);
}

#[tokio::test]
async fn the_async_client_hands_a_late_answer_to_the_flow() {
    let endpoint = endpoint();
    let server = Arc::clone(&endpoint);
    let transport = move |_request: Request<Vec<u8>>, _deadline: Instant, _max_body: usize| {
        let (n, delay) = server.next();
        async move {
            tokio::time::sleep(delay).await;
            Ok(Endpoint::answer(n))
        }
    };
    let client = AsyncClient::builder(config(), transport).build().unwrap();
    client
        .login(Credentials::password("joe", "pw"))
        .await
        .unwrap();
    let first = client.bearer().await.unwrap();

    // The renewal's task outlives the flow's deadline for it.
    assert_timed_out(client.unauthorized(&first, &HeaderMap::new()).await);
    assert_may_be_spent(client.bearer().await);
    tokio::time::sleep(LATE_BY + TIMEOUT / 2).await;

    assert_adopted(&client.bearer().await.unwrap(), &endpoint);
}
