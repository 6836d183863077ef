//! The host's half of one store operation: a [`StoreRequest`] performed on a
//! [`SharedTokenStore`], and what to tell the flow and the other replicas.

use std::time::Duration;

use crate::time::UnixTime;

use super::protocol::{StoreReport, StoreRequest};
use super::store::{CasOutcome, MarkOutcome, SharedTokenStore};

/// What performing a [`StoreRequest`] calls for.
#[derive(Debug, Clone, PartialEq)]
pub struct Performed {
    /// Report this to the flow ([`Input::Store`](crate::Input::Store)) before polling it
    /// again.
    pub report: Option<StoreReport>,
    /// The store changed in a way other replicas wait for (tokens written, lease released):
    /// tell them, with [`StoreReport::Changed`] and a fresh snapshot.
    pub changed: bool,
}

/// Performs `request` on `store` for the replica named `holder`, taking leases for `lease`
/// (see [`Config::renewal_lease_duration`](crate::Config::renewal_lease_duration)) at wall
/// time `now`, and says what to report. The flow itself never calls the store: a host does,
/// through this function or its own.
///
/// An error reaching the store is returned as it is. For
/// [`StoreRequest::AcquireLease`] the host reports [`StoreReport::Unavailable`]; for a write
/// the flow takes as done ([`StoreRequest::TokensUpdated`]), the host treats it as it treats a
/// failed save of [`Event::TokensUpdated`](crate::Event::TokensUpdated).
pub fn perform<S: SharedTokenStore + ?Sized>(
    store: &S,
    holder: &str,
    lease: Duration,
    now: UnixTime,
    request: &StoreRequest,
) -> Result<Performed, S::Error> {
    let quiet = |report| Performed {
        report,
        changed: false,
    };
    let written = |outcome| match outcome {
        CasOutcome::Written(_) => Performed {
            report: None,
            changed: true,
        },
        CasOutcome::Conflict(snapshot) => quiet(Some(StoreReport::Conflict(snapshot))),
    };
    Ok(match request {
        StoreRequest::AcquireLease => quiet(Some(StoreReport::Lease(
            store.acquire_lease(holder, lease, now)?,
        ))),
        StoreRequest::MarkInFlight { since } => match store.mark_in_flight(holder, *since, now)? {
            MarkOutcome::Marked => quiet(None),
            MarkOutcome::LeaseLost => quiet(Some(StoreReport::LeaseLost)),
        },
        StoreRequest::TokensUpdated {
            tokens,
            expected_version,
        } => written(store.compare_and_set(*expected_version, Some(tokens))?),
        StoreRequest::TokensCleared { expected_version } => {
            written(store.compare_and_set(*expected_version, None)?)
        }
        StoreRequest::ReleaseLease { clear_in_flight } => {
            store.release_lease(holder, *clear_in_flight)?;
            Performed {
                report: None,
                changed: true,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::{LeaseAnswer, MemoryStore, StoreVersion};

    const LEASE: Duration = Duration::from_secs(60);

    #[test]
    fn each_request_says_what_to_report_and_whom_to_tell() {
        let store = MemoryStore::new();
        let now = UnixTime::from_secs(1_000);
        let run = |holder: &str, request| perform(&store, holder, LEASE, now, &request).unwrap();

        let granted = run("a", StoreRequest::AcquireLease);
        assert!(matches!(
            granted.report,
            Some(StoreReport::Lease(LeaseAnswer::Granted(_)))
        ));
        let busy = run("b", StoreRequest::AcquireLease);
        assert!(matches!(
            busy.report,
            Some(StoreReport::Lease(LeaseAnswer::Busy(_)))
        ));
        assert_eq!(
            run("b", StoreRequest::MarkInFlight { since: now }).report,
            Some(StoreReport::LeaseLost)
        );
        assert_eq!(
            run("a", StoreRequest::MarkInFlight { since: now }),
            Performed {
                report: None,
                changed: false
            }
        );
        let cleared = run(
            "a",
            StoreRequest::TokensCleared {
                expected_version: StoreVersion::EMPTY,
            },
        );
        assert!(cleared.changed && cleared.report.is_none());
        let stale = run(
            "b",
            StoreRequest::TokensCleared {
                expected_version: StoreVersion::EMPTY,
            },
        );
        assert!(
            matches!(stale.report, Some(StoreReport::Conflict(s)) if s.version == StoreVersion::new(1))
        );
        assert!(
            run(
                "a",
                StoreRequest::ReleaseLease {
                    clear_in_flight: true
                }
            )
            .changed
        );
    }
}
