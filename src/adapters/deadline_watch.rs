//! The deadlines of async API calls, watched by one thread of the process rather than by the
//! runtime's timer.
//!
//! A tokio timer per call is cheap in the runtime, but while any timer is pending, every
//! worker that runs out of work parks with a timeout, and the kernel arms and cancels a timer
//! for each of those parks; at tens of thousands of calls a second on a virtual machine that
//! was the largest cost the client added to a raw reqwest call (`perf`: an eighth of the
//! workers' samples, about three points of throughput). Here each call in flight is entered,
//! with its waker, in one ordered map; a thread of its own sleeps until the earliest
//! deadline and wakes the calls whose deadline has passed. A call that ends removes itself.
//! The thread is told of a new deadline only when it is earlier than the one it sleeps
//! until, which, with every API call given the same timeout, is almost never.
//!
//! While no call is in flight the thread sleeps for a second, then two, up to a minute, so
//! that a burst of calls after a quiet spell does not wake it for each. It runs for the rest
//! of the process once started. Should the thread fail to start, callers use the runtime's
//! timer instead.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// How long the thread first sleeps when no call is in flight; it doubles up to
/// [`IDLE_MAX`].
const IDLE_FIRST: Duration = Duration::from_secs(1);
const IDLE_MAX: Duration = Duration::from_secs(64);

/// The process's watch.
static WATCH: Watch = Watch::new();

/// Runs `future` until it completes (`Some` of its output) or `deadline` passes (`None`),
/// whichever comes first; with the runtime's timer when the watch is not running.
pub(crate) async fn until_deadline<F: Future>(future: F, deadline: Instant) -> Option<F::Output> {
    if !WATCH.running() {
        return ::tokio::time::timeout_at(deadline.into(), future)
            .await
            .ok();
    }
    watched(&WATCH, future, deadline).await
}

/// `future` until `deadline`, watched by `watch`.
async fn watched<F: Future>(watch: &Watch, future: F, deadline: Instant) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut entry = Entry {
        watch,
        deadline,
        key: None,
    };
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if Instant::now() >= deadline {
            return Poll::Ready(None);
        }
        entry.enter(cx.waker());
        Poll::Pending
    })
    .await
}

/// Deadlines in flight and the thread watching them.
struct Watch {
    state: Mutex<State>,
    /// Tells the thread of a deadline earlier than the one it sleeps until.
    alarm: Condvar,
    /// Whether the thread was started (`false`: it could not be; callers use the runtime's
    /// timer).
    started: OnceLock<bool>,
}

struct State {
    /// Each call's waker, by deadline (and a key, for deadlines that are equal).
    calls: BTreeMap<(Instant, u64), Waker>,
    next_key: u64,
    /// When the thread wakes next, if it sleeps.
    wakes_at: Option<Instant>,
}

impl Watch {
    const fn new() -> Watch {
        Watch {
            state: Mutex::new(State {
                calls: BTreeMap::new(),
                next_key: 0,
                wakes_at: None,
            }),
            alarm: Condvar::new(),
            started: OnceLock::new(),
        }
    }

    /// Whether the thread runs; starts it on first use.
    fn running(&'static self) -> bool {
        *self.started.get_or_init(|| {
            thread::Builder::new()
                .name("tokenflow-deadlines".into())
                .spawn(|| self.watch())
                .is_ok()
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics with the lock held; a poisoned lock still holds a consistent map.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Enters a call due at `deadline`; returns its key.
    fn enter(&self, deadline: Instant, waker: Waker) -> u64 {
        let mut state = self.lock();
        let key = state.next_key;
        state.next_key = key.wrapping_add(1);
        state.calls.insert((deadline, key), waker);
        if state.wakes_at.is_none_or(|at| deadline < at) {
            self.alarm.notify_one();
        }
        key
    }

    /// Replaces the waker of the call entered with `key`.
    fn rewake(&self, deadline: Instant, key: u64, waker: Waker) {
        if let Some(entered) = self.lock().calls.get_mut(&(deadline, key)) {
            *entered = waker;
        }
    }

    /// Removes the call entered with `key`.
    fn leave(&self, deadline: Instant, key: u64) {
        self.lock().calls.remove(&(deadline, key));
    }

    /// The thread: wakes the calls whose deadline has passed, then sleeps until the next.
    fn watch(&self) {
        let mut idle = IDLE_FIRST;
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            while let Some(entry) = state.calls.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            if !due.is_empty() {
                drop(state);
                due.into_iter().for_each(Waker::wake);
                state = self.lock();
                continue;
            }
            let until = match state.calls.first_key_value() {
                Some(((deadline, _), _)) => {
                    idle = IDLE_FIRST;
                    *deadline
                }
                None => {
                    let until = now + idle;
                    idle = (idle * 2).min(IDLE_MAX);
                    until
                }
            };
            state.wakes_at = Some(until);
            state = self
                .alarm
                .wait_timeout(state, until.saturating_duration_since(now))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// A call's place in the watch while it waits; it leaves when dropped.
struct Entry<'a> {
    watch: &'a Watch,
    deadline: Instant,
    /// The key it was entered with, and the waker entered.
    key: Option<(u64, Waker)>,
}

impl Entry<'_> {
    /// Enters the call with `waker`, or replaces its waker when the task's has changed.
    fn enter(&mut self, waker: &Waker) {
        match &mut self.key {
            None => {
                let key = self.watch.enter(self.deadline, waker.clone());
                self.key = Some((key, waker.clone()));
            }
            Some((key, entered)) if !entered.will_wake(waker) => {
                self.watch.rewake(self.deadline, *key, waker.clone());
                *entered = waker.clone();
            }
            Some(_) => {}
        }
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        if let Some((key, _)) = self.key.take() {
            self.watch.leave(self.deadline, key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    /// A waker counting its wakes.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn leaked() -> &'static Watch {
        Box::leak(Box::new(Watch::new()))
    }

    #[test]
    fn a_call_is_woken_at_its_deadline_and_not_before() {
        let watch = leaked();
        assert!(watch.running());
        let count = Arc::new(Count::default());
        let started = Instant::now();
        let deadline = started + Duration::from_millis(200);
        watch.enter(deadline, Waker::from(Arc::clone(&count)));
        thread::sleep(Duration::from_millis(100));
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "woken early");
        while count.0.load(Ordering::SeqCst) == 0 {
            assert!(started.elapsed() < Duration::from_secs(5), "never woken");
            thread::sleep(Duration::from_millis(5));
        }
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(watch.lock().calls.is_empty(), "a woken call leaves the map");
    }

    #[test]
    fn an_earlier_deadline_wakes_the_sleeping_thread() {
        let watch = leaked();
        assert!(watch.running());
        let later = Arc::new(Count::default());
        let earlier = Arc::new(Count::default());
        let started = Instant::now();
        watch.enter(
            started + Duration::from_secs(60),
            Waker::from(Arc::clone(&later)),
        );
        // Let the thread go to sleep until the minute is up.
        thread::sleep(Duration::from_millis(50));
        watch.enter(
            started + Duration::from_millis(100),
            Waker::from(Arc::clone(&earlier)),
        );
        while earlier.0.load(Ordering::SeqCst) == 0 {
            assert!(started.elapsed() < Duration::from_secs(5), "never woken");
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(later.0.load(Ordering::SeqCst), 0);
        assert_eq!(watch.lock().calls.len(), 1);
    }

    #[test]
    fn a_call_that_ends_leaves_and_is_never_woken() {
        let watch = leaked();
        assert!(watch.running());
        let count = Arc::new(Count::default());
        let waker = Waker::from(Arc::clone(&count));
        let mut entry = Entry {
            watch,
            deadline: Instant::now() + Duration::from_millis(50),
            key: None,
        };
        entry.enter(&waker);
        entry.enter(&waker);
        assert_eq!(watch.lock().calls.len(), 1, "entered once");
        drop(entry);
        assert!(watch.lock().calls.is_empty());
        thread::sleep(Duration::from_millis(150));
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_new_waker_replaces_the_one_entered() {
        let watch = leaked();
        assert!(watch.running());
        let first = Arc::new(Count::default());
        let second = Arc::new(Count::default());
        let started = Instant::now();
        let mut entry = Entry {
            watch,
            deadline: started + Duration::from_millis(100),
            key: None,
        };
        entry.enter(&Waker::from(Arc::clone(&first)));
        entry.enter(&Waker::from(Arc::clone(&second)));
        while second.0.load(Ordering::SeqCst) == 0 {
            assert!(started.elapsed() < Duration::from_secs(5), "never woken");
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_future_past_its_deadline_ends_and_one_within_it_completes() {
        let watch = leaked();
        assert!(watch.running());
        let started = Instant::now();
        let never = std::future::pending::<()>();
        let result = watched(watch, never, started + Duration::from_millis(150)).await;
        assert_eq!(result, None);
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(watch.lock().calls.is_empty());

        let quick = ::tokio::time::sleep(Duration::from_millis(20));
        let result = watched(watch, quick, Instant::now() + Duration::from_secs(30)).await;
        assert_eq!(result, Some(()));
        assert!(watch.lock().calls.is_empty());
    }
}
