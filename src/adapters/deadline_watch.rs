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
//! given the same timeout, is almost never. A call holds its task's waker once (in its slot),
//! names its shard without counting references, and reads the clock only when polled again:
//! each of those would be an atomic operation or two, or a clock read, on every call.
//!
//! While no call is in flight the thread sleeps for a second, then two, up to a minute, so
//! that a burst of calls after a quiet spell does not wake it for each. It runs for the rest
//! of the process once started. Should the thread fail to start, callers use the runtime's
//! timer instead.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, RawWakerVTable, Waker};
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
    /// and of the ones tests make).
    static SHARDS: Held = const { Held(RefCell::new(Vec::new())) };
}

/// A thread's shards, handed back to their watches when the thread ends.
struct Held(RefCell<Vec<(&'static Watch, &'static Shard)>>);

impl Drop for Held {
    fn drop(&mut self) {
        for (watch, shard) in self.0.get_mut().drain(..) {
            lock(&watch.spare).push(shard);
        }
    }
}

pin_project_lite::pin_project! {
    /// A future run until it completes or its deadline passes, whichever comes first; made by
    /// [`until_deadline`]. A named future rather than an `async fn`, which would keep the
    /// future it runs twice (as its argument and as the local it pins), and the future of
    /// every API call is moved a few times per call.
    pub(crate) struct UntilDeadline<F: Future> {
        #[pin]
        future: F,
        // The call's place in the watch; `None` for a call without a deadline.
        entry: Option<Entry>,
        // What the call answers when its deadline passes.
        timed_out: fn() -> F::Output,
        // The runtime's timer, when the watch's thread could not be started.
        fallback: Option<Pin<Box<::tokio::time::Sleep>>>,
    }
}

/// Runs `future` until it completes, or until `deadline` passes (when it is `Some`) and it
/// answers `timed_out()` instead.
pub(crate) fn until_deadline<F: Future>(
    future: F,
    deadline: Option<Instant>,
    timed_out: fn() -> F::Output,
) -> UntilDeadline<F> {
    watched_by(&WATCH, future, deadline, timed_out)
}

/// [`until_deadline`] with `watch`.
fn watched_by<F: Future>(
    watch: &'static Watch,
    future: F,
    deadline: Option<Instant>,
    timed_out: fn() -> F::Output,
) -> UntilDeadline<F> {
    UntilDeadline {
        future,
        entry: deadline.map(|deadline| Entry {
            watch,
            deadline,
            place: None,
        }),
        timed_out,
        fallback: None,
    }
}

impl<F: Future> Future for UntilDeadline<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(output);
        }
        let Some(entry) = this.entry else {
            return Poll::Pending;
        };
        // The first time (neither entered in the watch nor waiting on the runtime's timer yet),
        // the clock is not read: a call is made just after its deadline was looked at, and
        // one past its deadline all the same is woken at once (the watch's thread is told of
        // a deadline earlier than the one it sleeps until; the runtime's timer fires at its
        // first poll).
        let waited = entry.place.is_some() || this.fallback.is_some();
        if waited && Instant::now() >= entry.deadline {
            return Poll::Ready((this.timed_out)());
        }
        if entry.watch.running() {
            entry.enter(cx.waker());
            return Poll::Pending;
        }
        let sleep = this
            .fallback
            .get_or_insert_with(|| Box::pin(::tokio::time::sleep_until(entry.deadline.into())));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready((this.timed_out)()),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The shards of the calls in flight and the thread watching them.
struct Watch {
    /// Every shard, for the watching thread. A shard lives as long as the process: a call
    /// names its shard without counting references (two atomic operations per call fewer),
    /// and a thread that ends hands its shard to the next thread that enters a call, so that
    /// there are never more shards than threads at a time.
    shards: Mutex<Vec<&'static Shard>>,
    /// The shards of threads that ended.
    spare: Mutex<Vec<&'static Shard>>,
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
            spare: Mutex::new(Vec::new()),
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
    fn shard(&'static self) -> &'static Shard {
        SHARDS
            .try_with(|held| {
                let mut held = held.0.borrow_mut();
                if let Some((_, shard)) = held.iter().find(|(watch, _)| std::ptr::eq(*watch, self))
                {
                    return *shard;
                }
                let shard = lock(&self.spare).pop().unwrap_or_else(|| self.new_shard());
                held.push((self, shard));
                shard
            })
            // A thread whose storage is already gone (a call made from a thread-local's
            // destructor) shares the first shard: any shard serves, only not as quickly.
            .unwrap_or_else(|_| {
                let first = lock(&self.shards).first().copied();
                first.unwrap_or_else(|| self.new_shard())
            })
    }

    /// A shard of its own, for the life of the process.
    fn new_shard(&self) -> &'static Shard {
        let shard: &'static Shard = Box::leak(Box::default());
        lock(&self.shards).push(shard);
        shard
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
            for shard in lock(&self.shards).iter() {
                shard.collect(now, &mut due, &mut earliest);
            }
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
struct Entry {
    watch: &'static Watch,
    deadline: Instant,
    /// The shard and slot it was entered in, and which waker is there.
    place: Option<(&'static Shard, usize, WakerId)>,
}

/// Which waker a slot holds, told apart as [`Waker::will_wake`] does: a call compares the
/// waker of each poll with the one entered without holding a copy of its own (a copy of a
/// task's waker is two atomic operations on the task).
#[derive(PartialEq)]
struct WakerId {
    data: usize,
    vtable: &'static RawWakerVTable,
}

impl WakerId {
    fn of(waker: &Waker) -> WakerId {
        WakerId {
            data: waker.data().addr(),
            vtable: waker.vtable(),
        }
    }
}

impl Entry {
    /// Enters the call with `waker`, or replaces its waker when the task's has changed.
    fn enter(&mut self, waker: &Waker) {
        match &mut self.place {
            None => {
                let shard = self.watch.shard();
                let index = shard.enter(self.deadline, waker.clone());
                self.place = Some((shard, index, WakerId::of(waker)));
                self.watch.entered(self.deadline);
            }
            Some((shard, index, entered)) if *entered != WakerId::of(waker) => {
                shard.rewake(*index, waker.clone());
                *entered = WakerId::of(waker);
            }
            Some(_) => {}
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Some((shard, index, _)) = self.place.take() {
            shard.leave(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;
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
    fn entered(watch: &'static Watch, deadline: Instant, count: &Arc<Count>) -> Entry {
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
        let never = std::future::pending::<Result<(), &str>>();
        let result = watched_by(
            watch,
            never,
            Some(start + Duration::from_millis(150)),
            || Err("timed out"),
        )
        .await;
        assert_eq!(result, Err("timed out"));
        assert!(start.elapsed() >= Duration::from_millis(150));
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(in_flight(watch), 0);

        let quick = async {
            ::tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(())
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let result = watched_by(watch, quick, Some(deadline), || Err("timed out")).await;
        assert_eq!(result, Ok(()));
        assert_eq!(in_flight(watch), 0);
    }

    #[tokio::test]
    async fn a_future_already_past_its_deadline_ends_at_once() {
        let watch = started();
        let start = Instant::now();
        let never = std::future::pending::<Result<(), &str>>();
        let result = watched_by(watch, never, Some(start), || Err("timed out")).await;
        assert_eq!(result, Err("timed out"));
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(in_flight(watch), 0);
    }

    #[tokio::test]
    async fn without_a_deadline_a_future_is_never_entered_nor_cut_short() {
        let watch = started();
        let slow = async {
            ::tokio::time::sleep(Duration::from_millis(30)).await;
            Ok(())
        };
        let mut call = std::pin::pin!(watched_by(watch, slow, None, || Err("timed out")));
        assert!(futures_poll_once(call.as_mut()).await.is_none());
        assert_eq!(in_flight(watch), 0, "not entered");
        assert_eq!(call.await, Ok(()));
    }

    #[tokio::test]
    async fn without_the_thread_the_runtime_timer_ends_a_call_at_its_deadline() {
        let watch: &'static Watch = Box::leak(Box::new(Watch::new()));
        assert!(
            watch.started.set(false).is_ok(),
            "the thread is never started"
        );
        let start = Instant::now();
        let deadline = start + Duration::from_millis(100);
        let never = std::future::pending::<Result<(), &str>>();
        let result = watched_by(watch, never, Some(deadline), || Err("timed out")).await;
        assert_eq!(result, Err("timed out"));
        assert!(Instant::now() >= deadline);
        assert!(!watch.running());
        assert_eq!(in_flight(watch), 0);
    }

    #[test]
    fn a_thread_that_ends_hands_its_shard_to_the_next() {
        let watch = started();
        let count = Arc::new(Count::default());
        for _ in 0..3 {
            // Joined: its thread-local storage is gone, and its shard handed back, once the
            // thread is joined (not once the scope ends).
            let call = thread::scope(|scope| {
                let thread = scope
                    .spawn(|| entered(watch, Instant::now() + Duration::from_secs(60), &count));
                thread.join().unwrap()
            });
            drop(call);
        }
        assert_eq!(
            lock(&watch.shards).len(),
            1,
            "one shard for threads one after another"
        );
        let together = std::sync::Barrier::new(3);
        let calls: Vec<Entry> = thread::scope(|scope| {
            let threads: Vec<_> = (0..3)
                .map(|_| {
                    scope.spawn(|| {
                        let entry =
                            entered(watch, Instant::now() + Duration::from_secs(60), &count);
                        // Every thread holds its shard until all three entered a call.
                        together.wait();
                        entry
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(
            lock(&watch.shards).len(),
            3,
            "a shard each for threads at the same time"
        );
        assert_eq!(in_flight(watch), 3);
        drop(calls);
        assert_eq!(
            in_flight(watch),
            0,
            "calls leave shards of threads that ended"
        );
    }

    #[test]
    fn a_call_entered_from_a_thread_local_destructor_gets_a_shard() {
        /// Enters a call when the thread's storage is torn down, after `SHARDS` is gone
        /// (destructors run in the reverse order of first use on this platform).
        struct Late(&'static Watch, Arc<Count>);
        impl Drop for Late {
            fn drop(&mut self) {
                let entry = entered(self.0, Instant::now() + Duration::from_secs(60), &self.1);
                assert_eq!(in_flight(self.0), 1);
                drop(entry);
                assert_eq!(in_flight(self.0), 0);
                self.1.0.fetch_add(100, Ordering::SeqCst);
            }
        }
        thread_local! {
            static LATE: RefCell<Option<Late>> = const { RefCell::new(None) };
        }
        let watch = started();
        let count = Arc::new(Count::default());
        let for_thread = Arc::clone(&count);
        thread::spawn(move || {
            LATE.with(|late| *late.borrow_mut() = Some(Late(watch, for_thread)));
            let _ = watch.shard();
            assert!(SHARDS.try_with(|_| ()).is_ok());
        })
        .join()
        .unwrap();
        assert_eq!(count.wakes(), 100, "the destructor entered and left a call");
        assert_eq!(
            lock(&watch.shards).len(),
            1,
            "the thread's own shard, shared"
        );
    }

    /// Polls `future` once: its output, or `None` while it is pending.
    async fn futures_poll_once<F: Future + Unpin>(mut future: F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            Poll::Ready(match Pin::new(&mut future).poll(cx) {
                Poll::Ready(output) => Some(output),
                Poll::Pending => None,
            })
        })
        .await
    }
}
