//! Fixtures shared by the benchmarks: one configuration, one canned token response, a
//! logged-in flow, and an allocator that counts what it hands out.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use http::{Response, StatusCode, header};
use tokenflow::{Config, Credentials, Input, Output, RequestId, Timestamp, TokenFlow, UnixTime};

pub mod quick_run;

pub const TOKEN_ENDPOINT: &str = "https://id.example/connect/token";
pub const CLIENT_ID: &str = "bench-client";
pub const CLIENT_SECRET: &str = "bench-client-secret";
pub const SCOPE: &str = "api offline_access";
pub const USERNAME: &str = "joe.bloggs@example.com";
pub const PASSWORD: &str = "correct horse battery staple";

/// A token endpoint's answer of a realistic size: a JWT-sized access token, a refresh
/// token, a lifetime of one hour and the scope.
pub const TOKEN_RESPONSE_JSON: &str = concat!(
    r#"{"access_token":"eyJhbGciOiJSUzI1NiIsImtpZCI6ImJlbmNoIiwidHlwIjoiSldUIn0."#,
    r#"eyJpc3MiOiJodHRwczovL2lkLmV4YW1wbGUiLCJzdWIiOiJqb2UuYmxvZ2dzQGV4YW1wbGUuY29tIiwiYXVkIjoiYXBpIiwiZXhwIjoxNzAwMDAzNjAwfQ."#,
    r#"c2lnbmF0dXJlLW9mLWEtcmVhbGlzdGljLWxlbmd0aC1mb3ItYS1iZW5jaG1hcmstb25seS0wMTIzNDU2Nzg5","#,
    r#""token_type":"Bearer","expires_in":3600,"#,
    r#""refresh_token":"8xLOxBtZp8nQ2vVfY3wRkJ1uH0sA9cDe","#,
    r#""scope":"api offline_access"}"#
);

/// The canned token response, as a transport would hand it over.
pub fn token_response() -> Response<Vec<u8>> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json;charset=UTF-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(TOKEN_RESPONSE_JSON.as_bytes().to_vec())
        .expect("a valid response")
}

/// The host clock's reading when a benchmark starts: any origin will do.
pub const START: Timestamp = Timestamp::from_secs(1_000);

/// Client secret in `Authorization: Basic` (the default), the scope above, proactive refresh
/// on (the default).
pub fn config() -> Config {
    Config::builder(TOKEN_ENDPOINT, CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .scope(SCOPE)
        .build()
        .expect("a valid configuration")
}

/// Polls until `Idle`, as the run-loop contract asks; returns the id of the last request
/// the flow asked to send, if any.
pub fn drain(flow: &mut TokenFlow) -> Option<RequestId> {
    let mut sent = None;
    loop {
        match flow.poll_output() {
            Output::Idle { .. } => return sent,
            Output::Send(request) => sent = Some(request.id),
            Output::Event(event) => drop(std::hint::black_box(event)),
        }
    }
}

/// Logs `flow` in with the canned response, draining until idle.
pub fn log_in(flow: &mut TokenFlow, now: Timestamp) {
    flow.login(now, Credentials::password(USERNAME, PASSWORD));
    let id = drain(flow).expect("a login sends a token request");
    flow.handle_input(
        now,
        Input::Response {
            id,
            response: token_response(),
        },
    );
    drain(flow);
}

/// A flow holding a valid token, logged in at `now`.
pub fn logged_in_flow(now: Timestamp) -> TokenFlow {
    let mut flow = TokenFlow::new(config(), 7, now, UnixTime::from_secs(1_700_000_000));
    log_in(&mut flow, now);
    flow
}

/// Counts allocations and the bytes allocated and freed, passing everything to [`System`].
pub struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);
static FREED_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counters are plain atomics.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        FREED_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        FREED_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// A reading of the counters.
#[derive(Debug, Clone, Copy)]
pub struct HeapSnapshot {
    /// Allocations (and reallocations) so far.
    pub allocations: u64,
    /// Bytes allocated and not yet freed.
    pub live_bytes: u64,
}

impl HeapSnapshot {
    pub fn now() -> HeapSnapshot {
        let freed = FREED_BYTES.load(Ordering::Relaxed);
        HeapSnapshot {
            allocations: ALLOCATIONS.load(Ordering::Relaxed),
            live_bytes: ALLOCATED_BYTES.load(Ordering::Relaxed) - freed,
        }
    }

    /// Allocations since `earlier`.
    pub fn allocations_since(self, earlier: HeapSnapshot) -> u64 {
        self.allocations - earlier.allocations
    }

    /// Change of live bytes since `earlier` (negative when memory was freed).
    pub fn live_bytes_since(self, earlier: HeapSnapshot) -> i64 {
        self.live_bytes as i64 - earlier.live_bytes as i64
    }
}
