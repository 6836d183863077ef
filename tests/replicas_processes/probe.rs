//! The replica's transports: the client's own, wrapped to count the token requests by grant
//! type and to say on stdout when a refresh is about to go out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http::{Request, Response};
use tokenflow::TransportError;
use tokenflow::adapters::blocking::Transport;
use tokenflow::adapters::tokio::AsyncTransport;

use crate::setup::Line;

/// The token requests one replica sent.
#[derive(Debug, Default)]
pub struct Probe {
    pub logins: AtomicU64,
    pub refreshes: AtomicU64,
    pub others: AtomicU64,
}

impl Probe {
    /// Counts `request` if it is a token request; for a refresh, prints
    /// [`Line::RefreshSending`] first. The client sends a refresh only under the lease and
    /// after the in-flight mark is written, so when the parent reads the line, the replica
    /// holds the lease and the store holds the mark.
    fn before_send(&self, request: &Request<Vec<u8>>) {
        if request.uri().path() != "/token" {
            return;
        }
        let grant = form_urlencoded::parse(request.body())
            .find(|(name, _)| name == "grant_type")
            .map(|(_, value)| value.into_owned());
        match grant.as_deref() {
            Some("password") => {
                self.logins.fetch_add(1, Ordering::SeqCst);
            }
            Some("refresh_token") => {
                self.refreshes.fetch_add(1, Ordering::SeqCst);
                crate::replica::say(&Line::RefreshSending {
                    pid: std::process::id(),
                });
            }
            _ => {
                self.others.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// A transport that tells its [`Probe`] of each request before sending it.
pub struct Probed<T> {
    inner: T,
    probe: Arc<Probe>,
}

impl<T> Probed<T> {
    pub fn new(inner: T, probe: &Arc<Probe>) -> Self {
        Probed {
            inner,
            probe: Arc::clone(probe),
        }
    }
}

impl<T: Transport> Transport for Probed<T> {
    fn send(
        &self,
        request: Request<Vec<u8>>,
        deadline: Instant,
        max_body: usize,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        self.probe.before_send(&request);
        self.inner.send(request, deadline, max_body)
    }
}

impl<T: AsyncTransport> AsyncTransport for Probed<T> {
    fn send(
        &self,
        request: Request<Vec<u8>>,
        deadline: Instant,
        max_body: usize,
    ) -> impl Future<Output = Result<Response<Vec<u8>>, TransportError>> + Send {
        self.probe.before_send(&request);
        self.inner.send(request, deadline, max_body)
    }
}
