//! The deadlines of async API calls, watched by one thread of the process rather than by the
//! runtime's timer.
//!
//! A tokio timer per call is cheap in the runtime, but while any timer is pending, every
//! worker that runs out of work parks with a timeout, and the kernel arms and cancels a timer
//! for each of those parks; at tens of thousands of calls a second on a virtual machine that
//! was the largest cost the client added to a raw reqwest call (`perf`: an eighth of the
//! workers' samples, about three points of throughput). Here each call in flight is entered,
//! with its waker, in a table of the thread it runs on (its shard: entering and leaving touch
//! no memory another thread writes, so no cache line moves between cores per call); a thread
//! of its own sleeps until the earliest deadline of all shards and wakes the calls whose
//! deadline has passed. A call that ends leaves its shard. The thread is told of a new
//! deadline only when it is earlier than the one it sleeps until, which, with every API call
//! given the same timeout, is almost never.
//!
//! While no call is in flight the thread sleeps for a second, then two, up to a minute, so
//! that a burst of calls after a quiet spell does not wake it for each. It runs for the rest
//! of the process once started. Should the thread fail to start, callers use the runtime's
//! timer instead.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// How long the thread first sleeps when no call is in flight; it doubles up to
/// [`IDLE_MAX`].
const IDLE_FIRST: Duration = Duration::from_secs(1);
const IDLE_MAX: Duration = Duration::from_secs(64);

/// `wakes_at` while the thread is awake, looking at the shards: any call entered meanwhile
/// tells it, so that none is missed.
const AWAKE: u64 = u64::MAX;

/// The process's watch.
static WATCH: Watch = Watch::new();

thread_local! {
    /// This thread's shard of each watch it entered a call in (of the process's one watch,
    /// and of the ones tests make), by the watch's address.
    static SHARDS: RefCell<Vec<(usize, Arc<Shard>)>> = const { RefCell::new(Vec::new()) };
}

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
        place: None,
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

/// The shards of the calls in flight and the thread watching them.
struct Watch {
    /// Every thread's shard, for the watching thread; a shard goes with its thread.
    shards: Mutex<Vec<Weak<Shard>>>,
    /// Held by the watching thread except while it sleeps, and by whoever wakes it.
    sleep: Mutex<()>,
    /// Wakes the watching thread for a deadline earlier than the one it sleeps until.
    alarm: Condvar,
    /// When the thread wakes next, in nanoseconds since `epoch`; [`AWAKE`] while it is
    /// looking at the shards.
    wakes_at: AtomicU64,
    epoch: OnceLock<Instant>,
    /// Whether the thread was started (`false`: it could not be; callers use the runtime's
    /// timer).
    started: OnceLock<bool>,
}

impl Watch {
    const fn new() -> Watch {
        Watch {
            shards: Mutex::new(Vec::new()),
            sleep: Mutex::new(()),
            alarm: Condvar::new(),
            wakes_at: AtomicU64::new(AWAKE),
            epoch: OnceLock::new(),
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

    /// `at` in nanoseconds since the watch's epoch.
    fn nanos(&self, at: Instant) -> u64 {
        let epoch = self.epoch.get_or_init(Instant::now);
        u64::try_from(at.saturating_duration_since(*epoch).as_nanos()).unwrap_or(AWAKE - 1)
    }

    /// This thread's shard.
    fn shard(&self) -> Arc<Shard> {
        let id = std::ptr::from_ref(self) as usize;
        SHARDS.with(|shards| {
            let mut shards = shards.borrow_mut();
            if let Some((_, shard)) = shards.iter().find(|(watch, _)| *watch == id) {
                return Arc::clone(shard);
            }
            let shard = Arc::new(Shard::default());
            lock(&self.shards).push(Arc::downgrade(&shard));
            shards.push((id, Arc::clone(&shard)));
            shard
        })
    }

    /// Tells the watching thread of `deadline` when it sleeps past it.
    fn entered(&self, deadline: Instant) {
        if self.nanos(deadline) < self.wakes_at.load(Ordering::SeqCst) {
            let _sleep = lock(&self.sleep);
            self.alarm.notify_one();
        }
    }

    /// The watching thread: wakes the calls whose deadline has passed, then sleeps until the
    /// next.
    fn watch(&self) {
        let mut idle = IDLE_FIRST;
        let mut sleep = lock(&self.sleep);
        loop {
            // Awake from here until it sleeps again: a call entered meanwhile tells it, and
            // waits for the lock until it sleeps.
            self.wakes_at.store(AWAKE, Ordering::SeqCst);
            let now = Instant::now();
            let mut due = Vec::new();
            let mut earliest = None;
            lock(&self.shards).retain(|shard| match shard.upgrade() {
                Some(shard) => {
                    shard.collect(now, &mut due, &mut earliest);
                    true
                }
                None => false,
            });
            if !due.is_empty() {
                // A waker may run anything, entering a call included: not with a lock held.
                drop(sleep);
                due.into_iter().for_each(Waker::wake);
                sleep = lock(&self.sleep);
                continue;
            }
            let until = match earliest {
                Some(deadline) => {
                    idle = IDLE_FIRST;
                    deadline
                }
                None => {
                    let until = now + idle;
                    idle = (idle * 2).min(IDLE_MAX);
                    until
                }
            };
            self.wakes_at.store(self.nanos(until), Ordering::SeqCst);
            sleep = self
                .alarm
                .wait_timeout(sleep, until.saturating_duration_since(now))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// Nothing panics with these locks held; a poisoned lock still holds consistent data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One thread's calls in flight: a slot each, reused once free.
#[derive(Default)]
struct Shard {
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    taken: Vec<Option<Slot>>,
    free: Vec<usize>,
}

struct Slot {
    deadline: Instant,
    waker: Waker,
    /// Woken for its deadline: not again.
    fired: bool,
}

impl Shard {
    /// Enters a call due at `deadline`; returns its slot.
    fn enter(&self, deadline: Instant, waker: Waker) -> usize {
        let mut slots = lock(&self.slots);
        let slot = Some(Slot {
            deadline,
            waker,
            fired: false,
        });
        match slots.free.pop() {
            Some(index) => {
                if let Some(free) = slots.taken.get_mut(index) {
                    *free = slot;
                }
                index
            }
            None => {
                slots.taken.push(slot);
                slots.taken.len() - 1
            }
        }
    }

    /// Replaces the waker of the call in `index`.
    fn rewake(&self, index: usize, waker: Waker) {
        if let Some(Some(slot)) = lock(&self.slots).taken.get_mut(index) {
            slot.waker = waker;
        }
    }

    /// Frees the slot `index`.
    fn leave(&self, index: usize) {
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.taken.get_mut(index) {
            if slot.take().is_some() {
                slots.free.push(index);
            }
        }
    }

    /// Marks the calls due at `now` fired and adds their wakers to `due`; lowers `earliest`
    /// to the earliest deadline of the others.
    fn collect(&self, now: Instant, due: &mut Vec<Waker>, earliest: &mut Option<Instant>) {
        for slot in lock(&self.slots).taken.iter_mut().flatten() {
            if slot.fired {
                continue;
            }
            if slot.deadline <= now {
                slot.fired = true;
                due.push(slot.waker.clone());
            } else if earliest.is_none_or(|at| slot.deadline < at) {
                *earliest = Some(slot.deadline);
            }
        }
    }
}

/// A call's slot in its shard while it waits; freed when dropped.
struct Entry<'a> {
    watch: &'a Watch,
    deadline: Instant,
    /// The shard and slot it was entered in, and the waker entered.
    place: Option<(Arc<Shard>, usize, Waker)>,
}

impl Entry<'_> {
    /// Enters the call with `waker`, or replaces its waker when the task's has changed.
    fn enter(&mut self, waker: &Waker) {
        match &mut self.place {
            None => {
                let shard = self.watch.shard();
                let index = shard.enter(self.deadline, waker.clone());
                self.place = Some((shard, index, waker.clone()));
                self.watch.entered(self.deadline);
            }
            Some((shard, index, entered)) if !entered.will_wake(waker) => {
                shard.rewake(*index, waker.clone());
                *entered = waker.clone();
            }
            Some(_) => {}
        }
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        if let Some((shard, index, _)) = self.place.take() {
            shard.leave(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    /// A waker counting its wakes.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Count {
        fn wakes(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// A watch of the test's own, its thread started.
    fn started() -> &'static Watch {
        let watch = Box::leak(Box::new(Watch::new()));
        assert!(watch.running());
        watch
    }

    /// A call due at `deadline`, entered with `count`'s waker.
    fn entered<'a>(watch: &'a Watch, deadline: Instant, count: &Arc<Count>) -> Entry<'a> {
        let mut entry = Entry {
            watch,
            deadline,
            place: None,
        };
        entry.enter(&Waker::from(Arc::clone(count)));
        entry
    }

    /// The calls in flight in all shards.
    fn in_flight(watch: &Watch) -> usize {
        lock(&watch.shards)
            .iter()
            .filter_map(Weak::upgrade)
            .map(|shard| lock(&shard.slots).taken.iter().flatten().count())
            .sum()
    }

    /// Waits until `count` was woken (at most five seconds).
    fn until_woken(count: &Count, started: Instant) {
        while count.wakes() == 0 {
            assert!(started.elapsed() < Duration::from_secs(5), "never woken");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_call_is_woken_at_its_deadline_once_and_not_before() {
        let watch = started();
        let count = Arc::new(Count::default());
        let start = Instant::now();
        let entry = entered(watch, start + Duration::from_millis(200), &count);
        thread::sleep(Duration::from_millis(100));
        assert_eq!(count.wakes(), 0, "woken early");
        until_woken(&count, start);
        assert!(start.elapsed() >= Duration::from_millis(200));
        thread::sleep(Duration::from_millis(50));
        assert_eq!(count.wakes(), 1, "woken once");
        drop(entry);
        assert_eq!(in_flight(watch), 0, "the call left");
    }

    #[test]
    fn an_earlier_deadline_wakes_the_sleeping_thread() {
        let watch = started();
        let later = Arc::new(Count::default());
        let earlier = Arc::new(Count::default());
        let start = Instant::now();
        let _later = entered(watch, start + Duration::from_secs(60), &later);
        // Let the thread go to sleep until the minute is up.
        thread::sleep(Duration::from_millis(50));
        let _earlier = entered(watch, start + Duration::from_millis(100), &earlier);
        until_woken(&earlier, start);
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(later.wakes(), 0);
    }

    #[test]
    fn calls_from_several_threads_are_each_woken_at_their_deadline() {
        let watch = started();
        let start = Instant::now();
        let counts: Vec<Arc<Count>> = (0..4).map(|_| Arc::default()).collect();
        thread::scope(|scope| {
            for (i, count) in counts.iter().enumerate() {
                scope.spawn(move || {
                    let deadline = start + Duration::from_millis(100 * (i as u64 + 1));
                    let _entry = entered(watch, deadline, count);
                    until_woken(count, start);
                    assert!(Instant::now() >= deadline);
                });
            }
        });
        assert!(counts.iter().all(|count| count.wakes() == 1));
    }

    #[test]
    fn a_call_that_ends_leaves_and_is_never_woken_and_its_slot_is_reused() {
        let watch = started();
        let count = Arc::new(Count::default());
        let waker = Waker::from(Arc::clone(&count));
        let mut entry = entered(watch, Instant::now() + Duration::from_millis(50), &count);
        entry.enter(&waker);
        assert_eq!(in_flight(watch), 1, "entered once");
        drop(entry);
        assert_eq!(in_flight(watch), 0);
        thread::sleep(Duration::from_millis(150));
        assert_eq!(count.wakes(), 0);
        let again = entered(watch, Instant::now() + Duration::from_secs(60), &count);
        let shard = watch.shard();
        assert_eq!(
            lock(&shard.slots).taken.len(),
            1,
            "the free slot is taken again"
        );
        drop(again);
    }

    #[test]
    fn a_new_waker_replaces_the_one_entered() {
        let watch = started();
        let first = Arc::new(Count::default());
        let second = Arc::new(Count::default());
        let start = Instant::now();
        let mut entry = entered(watch, start + Duration::from_millis(100), &first);
        entry.enter(&Waker::from(Arc::clone(&second)));
        until_woken(&second, start);
        assert_eq!(first.wakes(), 0);
    }

    #[tokio::test]
    async fn a_future_past_its_deadline_ends_and_one_within_it_completes() {
        let watch = started();
        let start = Instant::now();
        let never = std::future::pending::<()>();
        let result = watched(watch, never, start + Duration::from_millis(150)).await;
        assert_eq!(result, None);
        assert!(start.elapsed() >= Duration::from_millis(150));
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(in_flight(watch), 0);

        let quick = ::tokio::time::sleep(Duration::from_millis(20));
        let result = watched(watch, quick, Instant::now() + Duration::from_secs(30)).await;
        assert_eq!(result, Some(()));
        assert_eq!(in_flight(watch), 0);
    }
}
