//! The resource-owner password grant at a service with single-use refresh tokens (provider
//! document 003), with the tokens kept in a file so that a restarted process carries on.
//!
//! The provider needs `client_id` and `client_secret` in the form body
//! (`client_secret_post`), the user's name exactly as issued, enterprise PIN included
//! (`1234/joe.bloggs@acme.com`), their password, and the scope
//! `qflowapi openid offline_access`. Every refresh returns a new refresh token and retires the
//! one presented, so each new token must be stored before it is relied upon. The example
//! refreshes several times, counts the distinct refresh tokens presented (never printing
//! them), then starts a second client from the same file, which carries on without logging in.
//!
//! ```sh
//! # against a token service and an API started in-process on 127.0.0.1 (1-second tokens)
//! cargo run --example resource_owner_rotation
//! # against a real provider (or set TOKENFLOW_TOKEN_ENDPOINT, TOKENFLOW_CLIENT_ID, …)
//! cargo run --example resource_owner_rotation -- \
//!     --token-endpoint https://identity.example.com/core/connect/token \
//!     --client-id acme_resowner --client-secret SECRET \
//!     --username '1234/joe.bloggs@acme.com' --password PASSWORD \
//!     --api-url https://api.example.com/some/resource [--scope "qflowapi openid offline_access"]
//! ```
//!
//! The token file lives in a new directory under the system's temporary directory and is
//! deleted at the end. Against a real provider, whose tokens live an hour, the example does
//! not wait for expiry: it answers an API request with a 401 itself (without sending it) to
//! make the client refresh.

mod support;

use support::{fake_auth, loopback, report, settings};

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, SystemTime};

use fake_auth::{ClientAuthStyle, FakeAuthServer, Outcome, ServerConfig};
use report::{ObservedStore, Saves, Seen, Timeline, Watch};
use tokenflow::adapters::FileStore;
use tokenflow::adapters::blocking::BlockingClient;
use tokenflow::{ClientAuth, Config, Credentials};

const CLIENT_ID: &str = "acme_resowner";
const CLIENT_SECRET: &str = "cb818203-d58c-4bf7-a66a-43522716cf69";
const USERNAME: &str = "1234/joe.bloggs@acme.com";
const PASSWORD: &str = "secret1234";
const TOKEN_LIFETIME: Duration = Duration::from_secs(1);
const ROTATIONS: usize = 4;

type Client = BlockingClient<Watch>;

/// Where the example runs: the embedded server, or a real provider.
struct Target {
    embedded: Option<loopback::Loopback>,
    token_endpoint: String,
    api_url: String,
    client_id: String,
    client_secret: String,
    username: String,
    password: String,
}

/// A directory of its own under the temporary directory, deleted when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path =
            std::env::temp_dir().join(format!("tokenflow-example-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path)?;
        Ok(TempDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = settings::Settings::parse(&[])?;
    let timeline = Timeline::new();
    let target = target(&settings)?;
    let scope = settings.get_or("scope", "qflowapi openid offline_access");
    match &target.embedded {
        Some(server) => timeline.say(
            "app",
            &format!(
                "embedded token service and API on http://{} (tokens live {}, refresh tokens single-use)",
                server.addr,
                report::seconds(TOKEN_LIFETIME)
            ),
        ),
        None => timeline.say(
            "app",
            &format!("provider: token endpoint {}", target.token_endpoint),
        ),
    }
    let dir = TempDir::new()?;
    let file = dir.path().join("tokens.json");
    timeline.say("app", &format!("token file {}", file.display()));

    let config = Config::builder(&target.token_endpoint, &target.client_id)
        .client_secret(&target.client_secret)
        .client_auth(ClientAuth::SecretPost)
        .scope(&scope)
        .build()?;

    timeline.chapter("1. log in with the PIN-style username");
    let first = session(&config, &target, &file, &timeline)?;
    let (seen, saves) = (Arc::clone(&first.seen), Arc::clone(&first.saves));
    first.client.login(Credentials::password(
        target.username.clone(),
        target.password.clone(),
    ))?;
    if let Some(server) = &target.embedded {
        let world = server.world();
        let login = world
            .auth
            .requests()
            .iter()
            .find(|r| r.grant_type.as_deref() == Some("password"));
        let field = |name: &str| {
            login
                .and_then(|r| r.form.iter().find(|(n, _)| n == name))
                .map_or("(missing)".to_owned(), |(_, v)| format!("{v:?}"))
        };
        let username = field("username");
        let verbatim = if username == format!("{USERNAME:?}") {
            "exactly as configured"
        } else {
            "NOT as configured"
        };
        timeline.say(
            "server",
            &format!("received username {username}, {verbatim}"),
        );
        timeline.say("server", &format!("received scope {}", field("scope")));
    }
    call(&first.client, &target, &seen, &timeline)?;

    timeline.chapter("2. refresh several times: each refresh token is used once");
    for _ in 0..ROTATIONS {
        expire(&target, &seen, &timeline);
        call(&first.client, &target, &seen, &timeline)?;
    }
    timeline.say(
        "app",
        &format!(
            "the store saw {} distinct refresh tokens in {} saves",
            saves.distinct_refresh_tokens(),
            saves.saves()
        ),
    );
    if let Some(server) = &target.embedded {
        let world = server.world();
        let refreshes: Vec<_> = world
            .auth
            .requests()
            .iter()
            .filter(|r| r.grant_type.as_deref() == Some("refresh_token"))
            .collect();
        let distinct: HashSet<&str> = refreshes
            .iter()
            .filter_map(|r| r.form.iter().find(|(n, _)| n == "refresh_token"))
            .map(|(_, v)| v.as_str())
            .collect();
        let issued = refreshes
            .iter()
            .filter(|r| r.outcome == Outcome::Issued)
            .count();
        timeline.say(
            "server",
            &format!(
                "{} refreshes presented {} distinct refresh tokens; {issued} succeeded; {} refresh token live now",
                refreshes.len(),
                distinct.len(),
                world.auth.live_refresh_tokens()
            ),
        );
    }
    let password_logins = seen.grant_count("password");
    drop(first);
    timeline.say("app", "the first client is gone (the process \"restarts\")");

    timeline.chapter("3. a second client restored from the same file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
        timeline.say(
            "app",
            &format!(
                "{} is readable by its owner only: mode {mode:o}",
                file.display()
            ),
        );
    }
    let second = session(&config, &target, &file, &timeline)?;
    let seen2 = Arc::clone(&second.seen);
    call(&second.client, &target, &seen2, &timeline)?;
    expire(&target, &seen2, &timeline);
    call(&second.client, &target, &seen2, &timeline)?;

    timeline.chapter("summary");
    timeline.say(
        "app",
        &format!("first client's token requests: {}", seen.grants()),
    );
    timeline.say(
        "app",
        &format!("second client's token requests: {}", seen2.grants()),
    );
    timeline.say(
        "app",
        &format!(
            "password logins: {password_logins} in all; credentials source of the second client asked {} time(s)",
            second.asked.load(Ordering::SeqCst)
        ),
    );
    drop(second);
    drop(dir);
    timeline.say(
        "app",
        &format!(
            "deleted the token directory: {}",
            if file.parent().is_some_and(Path::exists) {
                "NO, it is still there"
            } else {
                "done"
            }
        ),
    );
    Ok(())
}

fn target(settings: &settings::Settings) -> Result<Target, Box<dyn std::error::Error>> {
    if let Some(token_endpoint) = settings.get("token-endpoint") {
        return Ok(Target {
            embedded: None,
            token_endpoint,
            api_url: settings.require("api-url")?,
            client_id: settings.require("client-id")?,
            client_secret: settings.require("client-secret")?,
            username: settings.require("username")?,
            password: settings.require("password")?,
        });
    }
    let mut auth = FakeAuthServer::new(ServerConfig {
        access_ttl: TOKEN_LIFETIME,
        // A superseded refresh token presented again revokes the whole grant (RFC 9700).
        revoke_family_on_reuse: true,
        ..ServerConfig::single_use_refresh()
    });
    auth.add_client(CLIENT_ID, Some(CLIENT_SECRET), ClientAuthStyle::Post);
    auth.add_user(USERNAME, PASSWORD);
    let server = loopback::Loopback::start(auth)?;
    Ok(Target {
        token_endpoint: server.token_endpoint(),
        api_url: server.api_url("/api/v1/flows"),
        embedded: Some(server),
        client_id: CLIENT_ID.to_owned(),
        client_secret: CLIENT_SECRET.to_owned(),
        username: USERNAME.to_owned(),
        password: PASSWORD.to_owned(),
    })
}

/// A client over the token file, and what is seen of it.
struct Session {
    client: Client,
    /// How often its credentials source was asked for a login.
    asked: Arc<AtomicUsize>,
    seen: Arc<Seen>,
    saves: Arc<Saves>,
}

/// A client over the token file, with a credentials source that only counts how often it is
/// asked (and gives nothing: this example logs in explicitly, once).
fn session(
    config: &Config,
    target: &Target,
    file: &Path,
    timeline: &Timeline,
) -> Result<Session, Box<dyn std::error::Error>> {
    let (transport, seen) = Watch::new(&target.token_endpoint, timeline)?;
    let (store, saves) = ObservedStore::new(FileStore::new(file), timeline);
    let asked = Arc::new(AtomicUsize::new(0));
    let source = {
        let asked = Arc::clone(&asked);
        let timeline = timeline.clone();
        move || {
            asked.fetch_add(1, Ordering::SeqCst);
            timeline.say("source", "credentials source asked for a login");
            None
        }
    };
    let client = BlockingClient::builder(config.clone(), transport)
        .store(store)
        .credentials(source)
        .build()?;
    Ok(Session {
        client,
        asked,
        seen,
        saves,
    })
}

/// Lets the access token run out (embedded server), or has the next API request answered 401
/// (real provider), so that the next call refreshes.
fn expire(target: &Target, seen: &Seen, timeline: &Timeline) {
    if target.embedded.is_some() {
        let wait = TOKEN_LIFETIME + Duration::from_millis(100);
        timeline.say(
            "app",
            &format!(
                "waiting {:.1} s for the token to run out",
                wait.as_secs_f64()
            ),
        );
        sleep(wait);
    } else {
        seen.refuse_next_api_call();
    }
}

fn call(
    client: &Client,
    target: &Target,
    seen: &Seen,
    timeline: &Timeline,
) -> Result<(), Box<dyn std::error::Error>> {
    let refused = seen.api_refused();
    let request = http::Request::get(&target.api_url).body(Vec::new())?;
    let path = request.uri().path().to_owned();
    let response = client.send(request)?;
    let generation = client.bearer()?.generation();
    let retried = if seen.api_refused() > refused {
        ", retried after the 401"
    } else {
        ""
    };
    timeline.say(
        "app",
        &format!(
            "GET {path} → {} with access token {generation}{retried}",
            response.status()
        ),
    );
    Ok(())
}
