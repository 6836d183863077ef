//! The secrets the flow holds, gathered to scrub them from text a server sends back.

use crate::config::Config;
use crate::grant::TokenGrant;
use crate::interactive::PendingAuthorization;
use crate::redact::{Patterns, Secrets};

use super::attempt::{Attempt, Call};
use super::revocation::Revocations;
use super::tokens::TokenSet;

/// Borrows every place the flow keeps a secret. Building it costs a few pointers; the secrets
/// are only visited when an error needs scrubbing.
pub(super) struct Held<'a> {
    pub(super) config: &'a Config,
    pub(super) attempt: Option<&'a Attempt>,
    pub(super) tokens: Option<&'a TokenSet>,
    pub(super) authorization: Option<&'a PendingAuthorization>,
    /// `None` while the revocations read an answer of their own: they add their tokens then.
    pub(super) revocations: Option<&'a Revocations>,
}

impl Secrets for Held<'_> {
    fn visit(&self, patterns: &mut Patterns) {
        if let Some(secret) = &self.config.client_secret {
            patterns.secret(secret.expose_secret());
        }
        if let Some(basic) = &self.config.basic_authorization {
            patterns.basic(basic);
        }
        if let Some(Call::Token(grant)) = self.attempt.map(|a| &a.call) {
            match grant {
                TokenGrant::Password { password, .. } => patterns.secret(password.expose_secret()),
                TokenGrant::RefreshToken(token) => patterns.secret(token.expose_secret()),
                TokenGrant::AuthorizationCode {
                    code,
                    code_verifier,
                    ..
                } => {
                    patterns.secret(code.expose_secret());
                    patterns.secret(code_verifier.expose_secret());
                }
                TokenGrant::DeviceCode(code) => patterns.secret(code.expose_secret()),
                TokenGrant::ClientCredentials => {}
            }
        }
        if let Some(tokens) = self.tokens {
            if let Some(access) = &tokens.access {
                patterns.secret(access.token.expose_secret());
            }
            if let Some(refresh) = &tokens.refresh {
                patterns.secret(refresh.token.expose_secret());
            }
        }
        if let Some(pending) = self.authorization {
            patterns.secret(pending.verifier.expose_secret());
        }
        if let Some(revocations) = self.revocations {
            revocations.visit(patterns);
        }
    }
}
