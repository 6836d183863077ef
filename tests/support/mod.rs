//! Deterministic test doubles: an authorization server, a protected resource and a clock.
#![allow(dead_code)]

pub mod clock;
pub mod fake_api;
pub mod fake_auth;
pub mod fixtures;
pub mod replicas;
pub mod sim;
