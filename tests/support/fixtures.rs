//! The server and client most behaviour tests share: a client `app` with secret `secret`
//! (client_secret_basic), a user `joe` / `pw`, and single-use refresh tokens whose reuse
//! revokes the grant.

use std::time::Duration;

use tokenflow::{Config, ConfigBuilder};

use super::fake_auth::{ClientAuthStyle, FakeAuthServer, ResponseStyle, ServerConfig};

/// A standard server with rotating, single-use refresh tokens and the given access lifetime.
pub fn rotating_server(access_ttl: Duration) -> FakeAuthServer {
    let mut server = FakeAuthServer::new(ServerConfig {
        access_ttl,
        refresh_ttl: None,
        style: ResponseStyle::Standard,
        rotate_refresh_tokens: true,
        refresh_requires_offline_access: false,
        revoke_family_on_reuse: true,
        require_query_grant_type: false,
    });
    server.add_client("app", Some("secret"), ClientAuthStyle::Basic);
    server.add_user("joe", "pw");
    server
}

/// The matching client configuration, to be finished by the test.
pub fn app_config() -> ConfigBuilder {
    Config::builder("https://id.example/token", "app").client_secret("secret")
}
