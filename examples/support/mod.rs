//! What the examples share: the test suite's simulated authorization server and API, the
//! loopback server that puts them on 127.0.0.1, the report printed as a client works, and the
//! settings for a real provider. Each example uses a part of it.
#![allow(dead_code)]

#[path = "../../tests/support/fake_api.rs"]
pub mod fake_api;
#[path = "../../tests/support/fake_auth.rs"]
pub mod fake_auth;
pub mod loopback;
pub mod report;
pub mod settings;
