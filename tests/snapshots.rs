//! The exact bytes of every kind of token request, and the exact text of every error, pinned
//! with insta. The error snapshots double as proof that no secret is ever shown.

use std::time::Duration;

use http::{HeaderMap, Request, StatusCode};
use tokenflow::token::parse_token_response;
use tokenflow::{
    ClientAuth, Config, Credentials, GrantKind, Input, Output, StoredTokens, Timestamp, TokenFlow,
    TransportError, UnixTime,
};

const SECRETS: [&str; 5] = [
    "s3cr:t/+%&= x",
    "pw-SECRET",
    "AT.secret",
    "RT.secret",
    "cs-SECRET",
];

fn render(request: &Request<Vec<u8>>) -> String {
    let mut out = format!("{} {}\n", request.method(), request.uri());
    for (name, value) in request.headers() {
        out.push_str(&format!("{name}: {}\n", value.to_str().unwrap()));
    }
    out.push('\n');
    out.push_str(std::str::from_utf8(request.body()).unwrap());
    out
}

fn first_request(flow: &mut TokenFlow) -> Request<Vec<u8>> {
    loop {
        match flow.poll_output() {
            Output::Send(request) => return request.request,
            Output::Event(_) => {}
            Output::Idle { .. } => panic!("no request was sent"),
        }
    }
}

fn login_request(config: Config, credentials: Credentials) -> String {
    let now = Timestamp::from_secs(1_000);
    let mut flow = TokenFlow::new(config, 1u64, now, UnixTime::from_secs(1_700_000_000));
    flow.login(now, credentials);
    render(&first_request(&mut flow))
}

fn builder(endpoint: &str, id: &str) -> tokenflow::ConfigBuilder {
    Config::builder(endpoint, id)
}

#[test]
fn password_with_client_secret_basic() {
    let config = builder("https://identity.example/connect/token", "datahub-backend")
        .client_secret("cs-SECRET")
        .scope("datahub-api offline_access")
        .build()
        .unwrap();
    insta::assert_snapshot!(login_request(
        config,
        Credentials::password("svc@acme.com", "pw-SECRET")
    ));
}

#[test]
fn password_with_client_secret_post_and_a_pin_username() {
    let config = builder(
        "https://identity.qflowhub.example/core/connect/token",
        "acme_resowner",
    )
    .client_secret("cs-SECRET")
    .client_auth(ClientAuth::SecretPost)
    .scope("qflowapi openid offline_access")
    .build()
    .unwrap();
    insta::assert_snapshot!(login_request(
        config,
        Credentials::password("{enterprise_pin}/joe.bloggs@acme.com", "pw-SECRET")
    ));
}

#[test]
fn password_with_unencoded_basic() {
    let config = builder("https://cognito.example/oauth2/token", "client")
        .client_secret("s3cr:t/+%&= x")
        .client_auth(ClientAuth::SecretBasicUnencoded)
        .build()
        .unwrap();
    insta::assert_snapshot!(login_request(
        config,
        Credentials::password("joe", "pw-SECRET")
    ));
}

#[test]
fn client_credentials_with_basic_and_a_secret_that_needs_encoding() {
    let config = builder("https://id.example/token", "special client")
        .client_secret("s3cr:t/+%&= x")
        .scope("api")
        .build()
        .unwrap();
    insta::assert_snapshot!(login_request(config, Credentials::ClientCredentials));
}

#[test]
fn client_credentials_at_the_gateway() {
    let config = builder(
        "https://api.gateway.example/auth/v2/accesstoken?grant_type=client_credentials",
        "APP-API-KEY",
    )
    .client_secret("cs-SECRET")
    .client_auth(ClientAuth::SecretPost)
    .build()
    .unwrap();
    insta::assert_snapshot!(login_request(config, Credentials::ClientCredentials));
}

#[test]
fn client_credentials_for_a_public_client() {
    let config = builder("http://127.0.0.1:8080/token", "public-app")
        .build()
        .unwrap();
    insta::assert_snapshot!(login_request(config, Credentials::ClientCredentials));
}

fn stored(expired: bool) -> StoredTokens {
    StoredTokens {
        version: 1,
        grant: GrantKind::Password,
        access_token: Some("AT.secret.1".into()),
        expires_at: Some(UnixTime::from_secs(if expired {
            1_600_000_000
        } else {
            1_800_000_000
        })),
        refresh_token: Some("RT.secret.1".into()),
        refresh_token_expires_at: None,
        scope: Some("api offline_access".into()),
        id_token: None,
        issued_at: UnixTime::from_secs(1_599_999_000),
        extra: Default::default(),
    }
}

/// A flow restored with an expired access token, asked for access: it is refreshing.
fn refreshing(config: Config) -> (TokenFlow, Timestamp) {
    let now = Timestamp::from_secs(1_000);
    let mut flow = TokenFlow::restore(
        config,
        stored(true),
        1u64,
        now,
        UnixTime::from_secs(1_700_000_000),
    )
    .unwrap();
    let _ = flow.access(now);
    (flow, now)
}

#[test]
fn refresh_token_with_basic() {
    let config = builder("https://id.example/token", "app")
        .client_secret("cs-SECRET")
        .scope("api offline_access")
        .build()
        .unwrap();
    let (mut flow, _) = refreshing(config);
    insta::assert_snapshot!(render(&first_request(&mut flow)));
}

fn error_text(value: &(impl std::fmt::Debug + std::fmt::Display)) -> String {
    let text = format!("{value}\n{value:#?}");
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} leaked in: {text}");
    }
    text
}

fn response_error(status: u16, body: &str) -> tokenflow::token::ResponseError {
    parse_token_response(
        StatusCode::from_u16(status).unwrap(),
        &HeaderMap::new(),
        body.as_bytes(),
        1024,
    )
    .unwrap_err()
}

#[test]
fn response_errors() {
    let cases = [
        (
            400,
            r#"{"error":"invalid_grant","error_description":"The refresh token is expired"}"#,
        ),
        (401, r#"{"error":"invalid_client"}"#),
        (
            200,
            r#"{"error":"invalid_request","error_uri":"https://id.example/errors/1"}"#,
        ),
        (
            502,
            "<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>",
        ),
        (500, r#"{"message":"AT.secret.9 broke"}"#),
        (503, ""),
        (200, ""),
        (200, r#"{"access_token":"AT.secret.1","#),
        (200, r#"["AT.secret.1"]"#),
        (200, r#"{"token_type":"bearer"}"#),
        (200, r#"{"access_token":42}"#),
        (
            200,
            r#"{"access_token":"AT.secret.1","access_token":"AT.secret.2"}"#,
        ),
        (200, r#"{"access_token":"AT.secret 1"}"#),
        (200, r#"{"access_token":"AT.secret.1","expires_in":"-60"}"#),
        (200, r#"{"access_token":"AT.secret.1","token_type":"mac"}"#),
        (200, r#"{"access_token":"AT.secret.1","scope":{"a":1}}"#),
        (200, r#"{"access_token":"AT.secret.1","refresh_token":7}"#),
    ];
    let text: Vec<String> = cases
        .iter()
        .map(|(status, body)| error_text(&response_error(*status, body)))
        .collect();
    let too_large =
        parse_token_response(StatusCode::OK, &HeaderMap::new(), &[b' '; 2048], 1024).unwrap_err();
    insta::assert_snapshot!(format!(
        "{}\n---\n{}",
        text.join("\n---\n"),
        error_text(&too_large)
    ));
}

#[test]
fn config_restore_transport_and_parser_errors() {
    let mut text = Vec::new();
    for builder in [
        builder("http://id.example/token", "c"),
        builder("not a url", "c"),
        builder("https://id.example/t", ""),
        builder("https://id.example/t", "c").client_auth(ClientAuth::SecretPost),
        builder("https://id.example/t", "c")
            .client_secret("cs-SECRET")
            .client_auth(ClientAuth::None),
        builder("https://id.example/t", "c").scope("a\\b"),
        builder("https://id.example/t", "c").request_timeout(Duration::ZERO),
    ] {
        text.push(error_text(&builder.build().unwrap_err()));
    }
    for stored in [
        &br#"{"version":1,"grant":"password","access_token":"AT.secret.1""#[..],
        br#"{"version":3}"#,
        br#"{"version":1,"grant":"password","issued_at":0}"#,
        br#"{"version":1,"grant":"password","access_token":"AT.secret\n1","issued_at":0}"#,
        br#"{"version":1,"grant":"RT.secret.1","issued_at":0}"#,
    ] {
        text.push(error_text(&StoredTokens::from_json(stored).unwrap_err()));
    }
    text.push(error_text(&TransportError::not_sent("connection refused")));
    text.push(error_text(&TransportError::timed_out("")));
    text.push(error_text(
        &tokenflow::challenge::parse_challenges(b"Bearer error=\"unterminated").unwrap_err(),
    ));
    text.push(error_text(
        &tokenflow::retry_after::parse_retry_after(b"-5", UnixTime::EPOCH).unwrap_err(),
    ));
    insta::assert_snapshot!(text.join("\n---\n"));
}

/// Every event a flow emits on the way through a rejected refresh, a failed login and a
/// transport failure, formatted with `Debug` (deadlines left out: they are real instants).
#[test]
fn events_and_outputs() {
    let config = builder("https://id.example/token", "app")
        .client_secret("cs-SECRET")
        .build()
        .unwrap();
    let (mut flow, now) = refreshing(config);
    let mut lines = Vec::new();
    let drain = |flow: &mut TokenFlow, lines: &mut Vec<String>| -> Option<tokenflow::RequestId> {
        let mut sent = None;
        loop {
            let output = flow.poll_output();
            let text = format!("{output:#?}");
            for secret in SECRETS {
                assert!(!text.contains(secret), "{secret} leaked in: {text}");
            }
            // Time is a plain, deterministic value: deadlines and wake-ups are recorded too.
            lines.push(text);
            match output {
                Output::Send(request) => sent = Some(request.id),
                Output::Idle { .. } => return sent,
                Output::Event(_) => {}
            }
        }
    };
    let id = drain(&mut flow, &mut lines).unwrap();
    let rejected = http::Response::builder()
        .status(400)
        .body(br#"{"error":"invalid_grant","error_description":"RT.secret.1 was used"}"#.to_vec())
        .unwrap();
    flow.handle_input(
        now,
        Input::Response {
            id,
            response: rejected,
        },
    );
    drain(&mut flow, &mut lines);
    flow.login(now, Credentials::password("joe", "pw-SECRET"));
    let id = drain(&mut flow, &mut lines).unwrap();
    flow.handle_input(
        now,
        Input::Failed {
            id,
            error: TransportError::not_sent("refused"),
        },
    );
    drain(&mut flow, &mut lines);
    insta::assert_snapshot!(lines.join("\n"));
}
