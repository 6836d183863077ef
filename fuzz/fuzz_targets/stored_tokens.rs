//! `StoredTokens::from_json` on any bytes, then `TokenFlow::restore` from what it accepts, at
//! several wall-clock times, followed by a first use of the restored flow.
//!
//! Input: the stored file.
#![no_main]

mod common;

use std::time::Duration;

use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use tokenflow::{
    Access, Config, Event, Input, Output, StoredTokens, Timestamp, TokenFlow, UnixTime,
};

const WALLS: [u64; 4] = [0, 1_700_000_000_000, 253_402_300_799_000, u64::MAX];

fn config(proactive: bool) -> Config {
    Config::builder("https://id.example/token", "app")
        .client_secret("cs.secret.fuzz")
        .proactive_refresh(proactive)
        .build()
        .unwrap()
}

fn tokens(stored: &StoredTokens) -> (Option<String>, Option<String>) {
    (
        stored
            .access_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        stored
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
    )
}

fn drain(flow: &mut TokenFlow, markers: &[String]) -> Vec<Output> {
    let mut outputs = Vec::new();
    for _ in 0..64 {
        let output = flow.poll_output();
        common::assert_no_marker(&format!("{output:?}"), markers);
        if let Output::Event(event) = &output {
            if let Event::Failed(error) = event {
                common::assert_no_marker(&error.to_string(), markers);
            }
        }
        if matches!(output, Output::Idle { .. }) {
            return outputs;
        }
        outputs.push(output);
    }
    panic!("no Idle within 64 outputs");
}

fuzz_target!(|data: &[u8]| {
    let markers = common::token_markers(&HeaderMap::new(), data);
    let stored = match StoredTokens::from_json(data) {
        Ok(stored) => stored,
        Err(error) => {
            let message = error.to_string();
            common::assert_no_marker(&message, &markers);
            common::assert_no_marker(&format!("{error:?}"), &markers);
            assert!(message.len() < 200, "{message}");
            return;
        }
    };
    common::assert_no_marker(&format!("{stored:?}"), &markers);
    assert!(stored.validate().is_ok());
    assert!(stored.access_token.is_some() || stored.refresh_token.is_some());

    // What is accepted can be written and read back.
    let again = StoredTokens::from_json(&stored.to_json()).expect("round trip");
    assert_eq!(tokens(&again), tokens(&stored));
    assert_eq!(again.expires_at, stored.expires_at);
    assert_eq!(again.issued_at, stored.issued_at);

    let start = Timestamp::from_secs(86_400);
    for (i, wall) in WALLS.into_iter().enumerate() {
        let now = start;
        let mut flow = TokenFlow::restore(
            config(i % 2 == 0),
            stored.clone(),
            i as u64,
            now,
            UnixTime::from_millis(wall),
        )
        .expect("validated tokens restore");
        common::assert_no_marker(&format!("{flow:?}"), &markers);
        let held = flow.stored_tokens().expect("restored tokens are held");
        assert_eq!(tokens(&held), tokens(&stored));
        drain(&mut flow, &markers);

        let access = flow.access(now);
        common::assert_no_marker(&format!("{access:?}"), &markers);
        match &access {
            Access::Ready(bearer) => {
                let want = format!("Bearer {}", tokens(&stored).0.expect("an access token"));
                assert_eq!(bearer.header_value().as_bytes(), want.as_bytes());
                assert_eq!(Some(bearer.generation()), flow.generation());
            }
            Access::Pending => assert!(flow.request_in_flight().is_some()),
            Access::LoginRequired => {}
        }
        let outputs = drain(&mut flow, &markers);
        let sends = outputs
            .iter()
            .filter(|o| matches!(o, Output::Send(_)))
            .count();
        assert!(sends <= 1, "{sends} token requests at once");

        // A 401 for the restored token, then time passing far beyond every deadline.
        if let Some(generation) = flow.generation() {
            flow.handle_input(
                now,
                Input::Unauthorized {
                    generation,
                    www_authenticate: vec![http::HeaderValue::from_static(
                        "Bearer error=\"invalid_token\"",
                    )],
                },
            );
            drain(&mut flow, &markers);
        }
        for step in [
            Duration::from_secs(31),
            Duration::from_secs(400 * 24 * 3600),
        ] {
            flow.handle_input(now + step, Input::Timeout);
            drain(&mut flow, &markers);
        }
        flow.logout(now);
        drain(&mut flow, &markers);
        assert!(flow.stored_tokens().is_none());
    }
});
