//! [`UreqTransport`]: the blocking client's ready-made [`Transport`], over a `ureq` 3 agent.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use ureq::config::ConfigBuilder;
use ureq::typestate::AgentScope;

use crate::adapters::blocking::Transport;
use crate::adapters::driver::{UNBOUNDED, time_left};
use crate::input::{TransportError, TransportErrorKind};

/// How the transport's own agent is configured, kept so that the agent can be built again:
/// a ureq configuration cannot be changed once built.
type Recipe = Arc<dyn Fn(ConfigBuilder<AgentScope>) -> ConfigBuilder<AgentScope> + Send + Sync>;

/// `config` with `budget` for each phase (a macro: ureq's configuration builders share their
/// setters through a trait it keeps private). Each phase is given the budget rather than one
/// overall timeout: with an overall timeout ureq resolves the host name on a thread of its
/// own for every request, pooled connection or not, which costs more than a whole exchange
/// on a local network. The host name is then resolved by the system's resolver, whose own
/// timeouts apply.
macro_rules! with_budget {
    ($config:expr, $budget:expr) => {{
        let budget: Option<Duration> = $budget;
        $config
            .timeout_connect(budget)
            .timeout_send_request(budget)
            .timeout_send_body(budget)
            .timeout_recv_response(budget)
            .timeout_recv_body(budget)
    }};
}

/// A [`Transport`] over a `ureq` 3 agent (rustls with the ring provider).
///
/// Every phase of a request (connecting, sending it, awaiting the response, reading its body)
/// is bounded by the time left until its deadline (unless that is a year or more: then the
/// agent's own timeouts apply), statuses are never errors, and redirects are never followed,
/// whatever the agent's own settings: a `3xx` is returned as it is. Following one would
/// re-send a token request's password, client secret or refresh token, or an API request's
/// access token, to wherever `Location` points (and take whatever that host answers); the
/// flow reports a redirect from the authorization server as
/// [`FailureCause::Redirect`](crate::FailureCause::Redirect), and `send` hands an API's
/// redirect to the caller.
///
/// A transport of one's own must not follow redirects either.
///
/// A transport that builds its agent ([`new`](Self::new), [`with_config`](Self::with_config))
/// builds it again for the client's API timeout when the client is built
/// ([`Transport::set_api_timeout`]): the agent itself then gives each phase that budget (a
/// 64th less, so that it never outlasts the time a request has left), and each read and write
/// on a connection a little less again. An API request then goes out as it is, without a
/// configuration of its own, and a pooled connection keeps its socket timeouts from one
/// request to the next instead of having them set twice per request. Other requests (token
/// requests with another timeout, a request sent late) are given their own budget, as every
/// request sent through an agent given with [`with_agent`](Self::with_agent) is.
#[derive(Clone)]
pub struct UreqTransport {
    agent: ureq::Agent,
    /// How to build the agent again; `None` for an agent given with `with_agent`.
    recipe: Option<Recipe>,
    /// The budget the agent's own configuration gives each phase of a request.
    preset: Option<Duration>,
}

impl fmt::Debug for UreqTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UreqTransport")
            .field("agent", &self.agent)
            .field("preset", &self.preset)
            .finish_non_exhaustive()
    }
}

impl Default for UreqTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl UreqTransport {
    /// A transport with a new agent with ureq's defaults (which honour the proxy environment
    /// variables), set to return statuses as responses and follow no redirects.
    pub fn new() -> Self {
        Self::with_config(|config| config)
    }

    /// A transport with a new agent with ureq's defaults changed by `configure`: a larger
    /// connection pool for many threads, a proxy, TLS settings. The transport then sets what
    /// it must (statuses as responses, no redirects) and, once told the API timeout, each
    /// phase's budget and the per-read and per-write timeouts, replacing what `configure`
    /// set for those.
    ///
    /// ```
    /// use tokenflow::adapters::blocking::UreqTransport;
    ///
    /// // Sixty-four threads calling one API keep their connections.
    /// let transport = UreqTransport::with_config(|config| {
    ///     config.max_idle_connections(64).max_idle_connections_per_host(64)
    /// });
    /// # let _ = transport;
    /// ```
    pub fn with_config(
        configure: impl Fn(ConfigBuilder<AgentScope>) -> ConfigBuilder<AgentScope>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        let recipe: Recipe = Arc::new(configure);
        UreqTransport {
            agent: build_agent(&recipe, None),
            recipe: Some(recipe),
            preset: None,
        }
    }

    /// A transport over `agent`, sharing its connection pool and settings. Whatever the
    /// agent's own settings (`max_redirects` included), each request is sent with statuses as
    /// responses, no redirects followed and each phase bounded by the time left until its
    /// deadline: ureq lets each request override the agent's configuration, and this
    /// transport does, at the price of a copy of that configuration per request.
    pub fn with_agent(agent: ureq::Agent) -> Self {
        UreqTransport {
            agent,
            recipe: None,
            preset: None,
        }
    }

    /// The agent. A transport that built its agent builds it again when a client is built
    /// over it (see the type's documentation); this is the current one.
    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }
}

impl Transport for UreqTransport {
    fn send(
        &self,
        request: Request<Vec<u8>>,
        deadline: Instant,
        max_body: usize,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        let left = time_left(deadline);
        if left == Some(Duration::ZERO) {
            return Err(TransportError::not_sent(
                "the deadline passed before the request was sent",
            ));
        }
        let sends_body = !request.body().is_empty()
            || !matches!(
                *request.method(),
                http::Method::GET
                    | http::Method::HEAD
                    | http::Method::OPTIONS
                    | http::Method::DELETE
            );
        let response = if sends_body {
            let request = self.configure(request, left);
            self.agent.run(request)
        } else {
            let request = self.configure(request.map(|_| ()), left);
            self.agent.run(request)
        }
        .map_err(ureq_error)?;
        read_response(response, max_body)
    }

    fn set_api_timeout(&mut self, timeout: Duration) {
        let Some(recipe) = &self.recipe else {
            return;
        };
        let preset = budget_for(timeout);
        if preset != self.preset {
            self.agent = build_agent(recipe, preset);
            self.preset = preset;
        }
    }
}

impl UreqTransport {
    /// `request`, with a configuration of its own when the agent's does not fit it.
    fn configure<B: ureq::AsSendBody>(
        &self,
        request: Request<B>,
        left: Option<Duration>,
    ) -> Request<B> {
        let config = self.agent.config();
        let settled = !config.http_status_as_error() && config.max_redirects() == 0;
        let Setup::Configure { budget } = setup(settled, self.preset, left) else {
            return request;
        };
        let request = self
            .agent
            .configure_request(request)
            .http_status_as_error(false)
            .max_redirects(0);
        // An agent of this transport's own has per-read and per-write timeouts for the
        // preset budget; a request with another budget must not keep them.
        let request = match self.preset {
            Some(_) => request.timeout_per_read(None).timeout_per_write(None),
            None => request,
        };
        with_budget!(request, budget).build()
    }
}

/// What a request needs besides the agent's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// Nothing: the agent's own configuration fits it.
    AsIs,
    /// A configuration of its own: statuses as responses, no redirects, and `budget` for
    /// each phase (`None`: no timeout of the transport's).
    Configure { budget: Option<Duration> },
}

/// What a request with `left` until its deadline needs, sent through an agent that is
/// `settled` (statuses as responses, no redirects) and gives each phase `preset`.
fn setup(settled: bool, preset: Option<Duration>, left: Option<Duration>) -> Setup {
    let fits = match (preset, left) {
        // The preset budget never outlasts the time left, and falls short of it by little.
        (Some(budget), Some(left)) => budget <= left && left - budget <= budget / 32,
        (None, None) => true,
        _ => false,
    };
    if settled && fits {
        Setup::AsIs
    } else {
        Setup::Configure { budget: left }
    }
}

/// The budget an agent gives each phase for API requests that may take `timeout`: a 64th
/// less, since a request reaches the transport a little after its deadline was set; `None`
/// when the timeout is as good as none.
fn budget_for(timeout: Duration) -> Option<Duration> {
    (timeout < UNBOUNDED).then(|| timeout - timeout / 64)
}

/// Each read's and write's timeout under a phase budget: a little less than the budget, so
/// that it, not the budget left in the phase (which shrinks as the phase goes on), is what
/// ureq sets on the socket; being the same from one request to the next, ureq sets it on a
/// pooled connection once instead of twice per request (a system call each). A phase that
/// has used more than the difference is bounded by what it has left, as before.
fn per_io(budget: Duration) -> Duration {
    budget - budget / 64
}

/// The agent `recipe` makes, settled, with `preset` for each phase.
fn build_agent(recipe: &Recipe, preset: Option<Duration>) -> ureq::Agent {
    let config = recipe(ureq::Agent::config_builder())
        .http_status_as_error(false)
        .max_redirects(0);
    let config = match preset {
        Some(budget) => with_budget!(config, Some(budget))
            .timeout_per_read(Some(per_io(budget)))
            .timeout_per_write(Some(per_io(budget))),
        None => config,
    };
    config.build().new_agent()
}

fn read_response(
    response: Response<ureq::Body>,
    max_body: usize,
) -> Result<Response<Vec<u8>>, TransportError> {
    use std::io::Read;
    let (parts, body) = response.into_parts();
    let limit = u64::try_from(max_body)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut bytes = Vec::new();
    body.into_reader()
        .take(limit)
        .read_to_end(&mut bytes)
        .map_err(io_error_while_reading)?;
    Ok(Response::from_parts(parts, bytes))
}

/// A failure reading the body: the request was sent, so at best it timed out.
fn io_error_while_reading(error: std::io::Error) -> TransportError {
    if error.kind() == std::io::ErrorKind::TimedOut {
        return TransportError::timed_out(error.to_string());
    }
    match error
        .into_inner()
        .map(|inner| inner.downcast::<ureq::Error>())
    {
        Some(Ok(ureq)) => match ureq_error(*ureq) {
            e if e.kind() == TransportErrorKind::NotSent => {
                TransportError::interrupted(e.message())
            }
            e => e,
        },
        Some(Err(other)) => TransportError::interrupted(other.to_string()),
        None => TransportError::interrupted("the connection failed while reading the response"),
    }
}

/// Maps a ureq error to the kind that says whether the request may have reached the server.
fn ureq_error(error: ureq::Error) -> TransportError {
    use std::io::ErrorKind as Io;
    use ureq::Timeout;
    let message = error.to_string();
    match error {
        ureq::Error::Timeout(Timeout::Resolve | Timeout::Connect) => {
            TransportError::not_sent(message)
        }
        ureq::Error::Timeout(_) => TransportError::timed_out(message),
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::BadUri(_)
        | ureq::Error::Http(_)
        | ureq::Error::InvalidProxyUrl
        | ureq::Error::Tls(_) => TransportError::not_sent(message),
        ureq::Error::Io(io) => match io.kind() {
            Io::ConnectionRefused
            | Io::AddrNotAvailable
            | Io::NetworkUnreachable
            | Io::HostUnreachable
            | Io::NotFound => TransportError::not_sent(message),
            Io::TimedOut | Io::WouldBlock => TransportError::timed_out(message),
            _ => TransportError::interrupted(message),
        },
        ureq::Error::Protocol(_) => TransportError::interrupted(message),
        _ => TransportError::new(TransportErrorKind::Other, message),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::thread;

    use super::*;

    /// A one-connection server on loopback: reads the request, then answers `reply` (or
    /// nothing) and holds the connection for `hold`.
    fn serve_once(reply: Option<&'static [u8]>, hold: Duration) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            if let Some(reply) = reply {
                let _ = stream.write_all(reply);
            }
            thread::sleep(hold);
        });
        port
    }

    fn ureq_get(
        port: u16,
        timeout: Duration,
        max_body: usize,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        let request = Request::post(format!("http://127.0.0.1:{port}/token"))
            .body(b"grant_type=client_credentials".to_vec())
            .unwrap();
        UreqTransport::new().send(request, Instant::now() + timeout, max_body)
    }

    #[test]
    fn ureq_errors_say_whether_the_request_went_out() {
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let refused = ureq_get(closed, Duration::from_secs(5), 100).unwrap_err();
        assert_eq!(refused.kind(), TransportErrorKind::NotSent, "{refused}");

        let port = serve_once(None, Duration::ZERO);
        let dropped = ureq_get(port, Duration::from_secs(5), 100).unwrap_err();
        assert!(dropped.is_ambiguous(), "{dropped}");

        let port = serve_once(None, Duration::from_secs(3));
        let silent = ureq_get(port, Duration::from_millis(300), 100).unwrap_err();
        assert_eq!(silent.kind(), TransportErrorKind::TimedOut, "{silent}");
    }

    #[test]
    fn ureq_returns_error_statuses_and_reads_one_byte_past_the_limit() {
        let reply: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
            content-length: 38\r\nconnection: close\r\n\r\n{\"error\":\"invalid_grant\",\"x\":\"123456\"}";
        let port = serve_once(Some(reply), Duration::ZERO);
        let response = ureq_get(port, Duration::from_secs(5), 10).unwrap();
        assert_eq!(response.status(), 400);
        assert_eq!(response.body().len(), 11);
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_request_goes_as_it_is_when_the_agents_budget_fits_its_time_left() {
        let preset = budget_for(30 * SECOND);
        assert_eq!(preset, Some(Duration::from_micros(29_531_250)));
        // An API request a few microseconds after its deadline was set.
        let left = Some(30 * SECOND - Duration::from_micros(7));
        assert_eq!(setup(true, preset, left), Setup::AsIs);
        assert_eq!(setup(true, preset, preset), Setup::AsIs);
        // Sent late: the preset would outlast its deadline.
        let late = Some(29 * SECOND);
        assert_eq!(setup(true, preset, late), Setup::Configure { budget: late });
        // A request allowed much longer (a token request's timeout, say) is not cut short.
        let longer = Some(60 * SECOND);
        assert_eq!(
            setup(true, preset, longer),
            Setup::Configure { budget: longer }
        );
        // No deadline: the preset must be lifted.
        assert_eq!(setup(true, preset, None), Setup::Configure { budget: None });
        // An agent without a preset fits only requests without a deadline, and only when it
        // returns statuses and follows no redirects.
        assert_eq!(setup(true, None, None), Setup::AsIs);
        assert_eq!(setup(false, None, None), Setup::Configure { budget: None });
        assert_eq!(setup(true, None, left), Setup::Configure { budget: left });
        assert_eq!(
            setup(false, preset, left),
            Setup::Configure { budget: left }
        );
        assert_eq!(budget_for(Duration::MAX), None);
        assert_eq!(budget_for(UNBOUNDED), None);
    }

    #[test]
    fn each_read_and_write_waits_a_little_less_than_the_budget() {
        let budget = Duration::from_micros(29_531_250);
        let each = per_io(budget);
        assert!(each < budget && budget - each < SECOND, "{each:?}");
        assert_eq!(per_io(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn the_api_timeout_rebuilds_an_agent_of_the_transports_own_and_no_other() {
        let mut transport = UreqTransport::with_config(|config| config.max_idle_connections(7));
        transport.set_api_timeout(30 * SECOND);
        let config = transport.agent().config();
        let budget = budget_for(30 * SECOND);
        assert_eq!(config.timeouts().recv_response, budget);
        assert_eq!(config.timeouts().connect, budget);
        assert_eq!(config.timeout_per_read(), budget.map(per_io));
        assert_eq!(config.timeout_per_write(), budget.map(per_io));
        assert_eq!(config.max_idle_connections(), 7, "the recipe is kept");
        assert!(!config.http_status_as_error());
        assert_eq!(config.max_redirects(), 0);

        transport.set_api_timeout(Duration::MAX);
        let config = transport.agent().config();
        assert_eq!(config.timeouts().recv_response, None);
        assert_eq!(config.timeout_per_read(), None);

        let given = ureq::Agent::new_with_defaults();
        let mut transport = UreqTransport::with_agent(given);
        transport.set_api_timeout(30 * SECOND);
        assert_eq!(transport.agent().config().timeouts().recv_response, None);
        assert!(transport.agent().config().http_status_as_error());
    }
}
