//! Property tests: whatever happens, in whatever order, the flow keeps its promises.
//!
//! The simulation host (`support::sim`) checks after every step that at most one token request
//! is in flight, that no refresh token is presented after its successor was stored, that
//! `TokensUpdated` comes right before each `AccessReady`, and that every drain reaches `Idle`
//! within a fixed bound. These tests throw random schedules at it.

mod support;

use std::time::Duration;

use proptest::prelude::*;
use support::fake_auth::{ClientAuthStyle, FakeAuthServer, Fault, ResponseStyle, ServerConfig};
use support::sim::{Network, Sim};
use tokenflow::{Access, Config, Credentials, Generation, Input, TransportError};

#[derive(Debug, Clone)]
enum Op {
    Login {
        good_password: bool,
    },
    ClientCredentials,
    Access,
    Logout,
    Unauthorized {
        current: bool,
        challenge: u8,
    },
    Advance(u64),
    /// The machine sleeps: time leaps without the flow being woken on the way.
    Jump(u64),
    Deliver(Answer),
    Fail(u8),
    Drop,
    Restart,
}

#[derive(Debug, Clone)]
enum Answer {
    Normal,
    Status(u16),
    RetryAfter(u16, String),
    Html,
    Body(u16, Vec<u8>),
    ApplyThenLose,
    RevokeAllFirst,
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        6 => Just(Answer::Normal),
        1 => prop::sample::select(vec![500u16, 502, 503, 504, 408]).prop_map(Answer::Status),
        1 => (prop::sample::select(vec![429u16, 503]), prop_oneof![
            (0u32..120).prop_map(|s| s.to_string()),
            Just("Wed, 21 Oct 2015 07:28:00 GMT".to_string()),
            Just("soon".to_string()),
            Just("99999999999999999999".to_string()),
        ]).prop_map(|(status, value)| Answer::RetryAfter(status, value)),
        1 => Just(Answer::Html),
        1 => (prop::sample::select(vec![200u16, 400, 401]), body()).prop_map(|(s, b)| Answer::Body(s, b)),
        1 => Just(Answer::ApplyThenLose),
        1 => Just(Answer::RevokeAllFirst),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(br#"{"access_token":"AT.x","token_type":"bearer","expires_in":"-3"}"#.to_vec()),
        Just(
            br#"{"access_token":"AT.y","token_type":"mac","refresh_token":"RT.salvaged"}"#.to_vec()
        ),
        Just(br#"{"error":"invalid_grant"}"#.to_vec()),
        Just(br#"{"error":"invalid_client"}"#.to_vec()),
        Just(br#"{"access_token":"AT.z","expires_in":0}"#.to_vec()),
        Just(b"".to_vec()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => any::<bool>().prop_map(|good_password| Op::Login { good_password }),
        1 => Just(Op::ClientCredentials),
        6 => Just(Op::Access),
        1 => Just(Op::Logout),
        3 => (any::<bool>(), 0u8..4).prop_map(|(current, challenge)| Op::Unauthorized { current, challenge }),
        4 => prop_oneof![0u64..2_000, 0u64..700_000].prop_map(Op::Advance),
        1 => prop_oneof![0u64..100_000, Just(10 * 365 * 24 * 3600)].prop_map(Op::Jump),
        8 => answer().prop_map(Op::Deliver),
        2 => (0u8..3).prop_map(Op::Fail),
        1 => Just(Op::Drop),
        1 => Just(Op::Restart),
    ]
}

fn config() -> Config {
    Config::builder("https://id.example/token", "app")
        .client_secret("secret")
        .scope("api offline_access")
        .request_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn server() -> FakeAuthServer {
    let mut server = FakeAuthServer::new(ServerConfig {
        access_ttl: Duration::from_secs(300),
        refresh_ttl: Some(Duration::from_secs(3600)),
        style: ResponseStyle::Standard,
        rotate_refresh_tokens: true,
        refresh_requires_offline_access: true,
        revoke_family_on_reuse: true,
        require_query_grant_type: false,
    });
    server.add_client("app", Some("secret"), ClientAuthStyle::Basic);
    server.add_user("joe", "pw");
    server
}

fn challenge(kind: u8) -> Vec<http::HeaderValue> {
    let text: &[u8] = match kind {
        0 => b"",
        1 => b"Bearer error=\"invalid_token\"",
        2 => b"Bearer error=\"insufficient_scope\"",
        _ => b"Bearer error=\"unterminated",
    };
    http::HeaderValue::from_bytes(text).into_iter().collect()
}

fn run(ops: Vec<Op>) {
    let mut sim = Sim::new(config(), server());
    sim.network = Network::Held;
    let mut seed = 1;
    for op in ops {
        let now = sim.now();
        match op {
            Op::Login { good_password } => {
                let password = if good_password { "pw" } else { "nope" };
                sim.cancel_in_flight();
                sim.flow.login(now, Credentials::password("joe", password));
            }
            Op::ClientCredentials => {
                sim.cancel_in_flight();
                sim.flow.login(now, Credentials::ClientCredentials);
            }
            Op::Access => {
                if let Access::Ready(bearer) = sim.flow.access(now) {
                    assert!(bearer.generation() >= Generation::default_for_tests());
                }
            }
            Op::Logout => {
                sim.cancel_in_flight();
                sim.flow.logout(now);
            }
            Op::Unauthorized {
                current,
                challenge: kind,
            } => {
                let generation = match (sim.flow.generation(), current) {
                    (Some(g), true) => g,
                    (Some(_), false) | (None, _) => Generation::default_for_tests(),
                };
                sim.flow.handle_input(
                    now,
                    Input::Unauthorized {
                        generation,
                        www_authenticate: challenge(kind),
                    },
                );
            }
            Op::Advance(millis) => {
                sim.advance(Duration::from_millis(millis));
                continue;
            }
            Op::Jump(secs) => {
                sim.clock.advance(Duration::from_secs(secs));
                let now = sim.now();
                sim.flow.handle_input(now, Input::Timeout);
            }
            Op::Deliver(answer) => {
                if sim.outbox.is_empty() {
                    continue;
                }
                match answer {
                    Answer::Normal => {}
                    Answer::Status(status) => sim.server.inject(Fault::Status(status)),
                    Answer::RetryAfter(429, retry_after) => {
                        sim.server.inject(Fault::TooManyRequests { retry_after })
                    }
                    Answer::RetryAfter(_, retry_after) => {
                        sim.server.inject(Fault::ServiceUnavailable { retry_after })
                    }
                    Answer::Html => sim.server.inject(Fault::HtmlPage(502)),
                    Answer::Body(status, body) => sim.server.inject(Fault::Body {
                        status,
                        content_type: "application/json",
                        body,
                    }),
                    Answer::ApplyThenLose => sim.server.inject(Fault::ApplyThenLose),
                    Answer::RevokeAllFirst => sim.server.revoke_all(),
                }
                let out = sim.outbox.remove(0);
                sim.deliver(out);
            }
            Op::Fail(kind) => {
                let error = match kind {
                    0 => TransportError::not_sent("refused"),
                    1 => TransportError::timed_out("slow"),
                    _ => TransportError::interrupted("reset"),
                };
                sim.fail_all(error);
            }
            Op::Drop => {
                sim.outbox.clear();
            }
            Op::Restart => {
                seed += 1;
                sim.restart(config(), seed);
            }
        }
        sim.settle();
        assert!(
            sim.live_outbox() <= 1,
            "more than one token request outstanding"
        );
    }
}

/// Stands in for "a generation the flow never issued": the flow numbers from 1.
trait ForTests {
    fn default_for_tests() -> Self;
}

impl ForTests for Generation {
    fn default_for_tests() -> Self {
        // Generations are opaque outside the crate; a restored flow starts at 1, so a fresh
        // flow's first token is the smallest generation there is.
        let flow = tokenflow::TokenFlow::restore(
            config(),
            tokenflow::StoredTokens {
                version: tokenflow::token::STORED_TOKENS_VERSION,
                grant: tokenflow::GrantKind::Password,
                access_token: Some("AT.probe".into()),
                expires_at: None,
                refresh_token: None,
                refresh_token_expires_at: None,
                scope: None,
                id_token: None,
                issued_at: tokenflow::UnixTime::from_secs(1),
                extra: Default::default(),
            },
            0u64,
            tokenflow::Timestamp::from_secs(1),
            tokenflow::UnixTime::from_secs(1),
        )
        .unwrap();
        flow.generation().unwrap()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_schedules_keep_every_promise(ops in prop::collection::vec(op(), 1..80)) {
        run(ops);
    }
}

#[test]
fn a_long_random_walk_keeps_every_promise() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let ops = prop::collection::vec(op(), 2_000..2_001)
        .new_tree(&mut runner)
        .unwrap()
        .current();
    run(ops);
}
