//! Many replicas of one client sharing one login through a token store.
//!
//! Several processes of one backend (replicas) that share one login must not each refresh the
//! same single-use refresh token: the second presentation is a reuse, which a strict server
//! answers by revoking the whole grant (RFC 9700 §4.14.2). With
//! [`ConfigBuilder::shared_store`](crate::ConfigBuilder::shared_store) the flow coordinates its
//! renewals with the other replicas through a store they share. The flow stays sans-IO: it
//! never calls the store. It asks its host with [`Event::Store`](crate::Event::Store)
//! ([`StoreRequest`]) and the host reports what the store said with
//! [`Input::Store`](crate::Input::Store) ([`StoreReport`]). [`SharedTokenStore`] is the store
//! interface a host can build on, and [`perform`] carries out one request on it and says what
//! to report; [`MemoryStore`] implements the store in memory for tests and simulations.
//! The clients of [`adapters`](crate::adapters) drive the protocol themselves, given a store
//! with `ClientBuilder::replicas`.
//!
//! # What the store holds
//!
//! A [`SharedSnapshot`]: the tokens, a [`StoreVersion`] that every successful compare-and-set
//! increments by one, and possibly an [`InFlightRefresh`] mark: a refresh with the stored
//! refresh token was sent at a given time and its outcome has not been written. Beside it,
//! the store keeps one renewal lease, held by at most one live replica at a time and freed
//! when its holder releases it or its time runs out.
//!
//! # The protocol
//!
//! After creating a flow, the host reports what the store holds with
//! [`StoreReport::Changed`] (the flow adopts tokens newer than its own: that is how a replica
//! starts from a login another replica made). Then, for each output and input:
//!
//! 1. **Renewing starts with the lease.** Instead of sending a renewal at once, the flow
//!    emits [`StoreRequest::AcquireLease`]. The host tries to take the lease for this replica
//!    and answers with [`StoreReport::Lease`], carrying the snapshot read under the lease
//!    ([`LeaseAnswer::Granted`]) or while another live replica holds it
//!    ([`LeaseAnswer::Busy`]). If the store cannot be reached, the host reports
//!    [`StoreReport::Unavailable`]: the flow retries with backoff like a failed request.
//! 2. **Tokens another replica renewed are adopted.** When the snapshot's version is newer
//!    than the flow's, the flow takes its tokens without any request. They are already
//!    stored, so no `TokensUpdated` comes out; [`Event::AccessReady`](crate::Event::AccessReady)
//!    does. Under the lease it then releases it; when busy, it waits. Tokens adopted from the
//!    store at any time (a change, a conflict) end a renewal under way, as a login does: a
//!    request of it still out is no longer awaited (its answer will be refused), and the host
//!    may cancel it. The tokens the flow holds, handed back by the store (a conflict at the
//!    version held), are not new: the flow takes their version and in-flight mark, and a
//!    renewal of them under way goes on.
//! 3. **Waiting.** While another replica holds the lease, the flow waits for the store to
//!    change: the host reports each change of the store (a write, a released lease) with
//!    [`StoreReport::Changed`]. A newer version is adopted; anything else makes the flow ask
//!    for the lease again. Without news it asks again after the request timeout. A host
//!    hears of changes through a [`StoreChanges`] feed (a database's notifications;
//!    [`MemoryStore::changes`] in memory).
//! 4. **A refresh under the lease is marked in flight first.** The flow emits
//!    [`StoreRequest::MarkInFlight`] right before the refresh request. As with
//!    `TokensUpdated`, the host must have written the mark **before it polls again** (the next
//!    output is the request): a replica that dies with its refresh in the air leaves the mark
//!    behind. If the host finds it no longer holds the lease, it reports
//!    [`StoreReport::LeaseLost`] before polling: the request is withdrawn unsent and the lease
//!    asked for again.
//! 5. **A mark without a live holder follows the reuse rule.** When the lease is granted and
//!    the stored token is marked in flight (its holder died, or its answer never came), the
//!    outcome of that refresh is unknown: the token is presented again only if the configured
//!    [`RefreshTokenReuse`](crate::RefreshTokenReuse) allows it (reusable, or inside the grace
//!    window measured from the mark's time). Under strict reuse the flow emits
//!    [`LoginRequired`](crate::Event::LoginRequired) with
//!    [`RefreshTokenMayBeSpent`](crate::LoginRequiredReason::RefreshTokenMayBeSpent).
//! 6. **New tokens are written with a compare-and-set.** Every new token set (from a
//!    refresh, a login, or a late answer) comes out as [`StoreRequest::TokensUpdated`] with
//!    the version the flow expects the store to hold. The host writes the tokens only if the
//!    store still holds that version, which makes it `expected_version.next()` and clears the
//!    in-flight mark; it must have done so **before it polls again**, as with
//!    [`Event::TokensUpdated`](crate::Event::TokensUpdated). If the store holds another
//!    version, the host reports [`StoreReport::Conflict`] with what it holds, before polling
//!    again: the flow drops its own tokens and adopts the stored ones. A logout or a refused
//!    refresh token comes out as [`StoreRequest::TokensCleared`], written the same way with no
//!    tokens.
//! 7. **The lease is released** with [`StoreRequest::ReleaseLease`] once the renewal ends,
//!    whatever its outcome. `clear_in_flight` says whether the mark may go: true when the
//!    server answered the last refresh (or none was sent), false when the outcome is unknown
//!    and the mark must stay for the next holder to judge.
//!
//! A lease answer, change or conflict that comes when the flow no longer waits for it is
//! harmless: a granted lease the flow does not need is released at once, and only versions
//! newer than the flow's are ever adopted (a stale snapshot could carry a refresh token the
//! flow already spent).
//!
//! Logins do not take the lease: they present no refresh token. Their tokens are written with
//! the compare-and-set, so that of two replicas logging in at once, one wins and the other
//! adopts its tokens.

mod changes;
mod host;
mod memory;
mod protocol;
mod snapshot;
mod store;

pub use changes::StoreChanges;
pub use host::{Performed, perform};
pub use memory::{MemoryChanges, MemoryStore};
pub use protocol::{LeaseAnswer, StoreReport, StoreRequest};
pub use snapshot::{InFlightRefresh, SharedSnapshot, StoreVersion};
pub use store::{CasOutcome, MarkOutcome, SharedTokenStore};
