//! Blocking values near async code. A shared store or change feed may be a blocking database
//! client with an async runtime of its own inside (the `postgres` crate's is), which may be
//! neither used nor dropped on a thread that drives async tasks: tokio refuses to start or
//! drop a runtime there, with a panic. The clients read such a store at build with
//! [`off_runtime`] and keep it in an [`OffRuntime`], which drops it on a thread of its own
//! when the last clone of an async client goes away inside a task.

use std::ops::{Deref, DerefMut};
use std::thread;

/// Whether this thread is inside a tokio runtime (a task, `block_on`, or the blocking pool).
fn inside_runtime() -> bool {
    #[cfg(feature = "tokio")]
    {
        ::tokio::runtime::Handle::try_current().is_ok()
    }
    #[cfg(not(feature = "tokio"))]
    {
        false
    }
}

/// Runs `work` here, or on a thread of its own when called inside an async runtime, and waits
/// for it. A panic in `work` goes on unwinding here.
pub(crate) fn off_runtime<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    if !inside_runtime() {
        return work();
    }
    thread::scope(|scope| match scope.spawn(work).join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// A value whose drop may block or start a runtime: dropped where it is outside async
/// runtimes, and on a thread of its own inside one.
pub(crate) struct OffRuntime<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> OffRuntime<T> {
    pub(crate) fn new(value: T) -> Self {
        OffRuntime(Some(value))
    }
}

impl<T: Send + 'static> Deref for OffRuntime<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // Only `drop` takes the value out.
        self.0.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl<T: Send + 'static> DerefMut for OffRuntime<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl<T: Send + 'static> Drop for OffRuntime<T> {
    fn drop(&mut self) {
        let Some(value) = self.0.take() else {
            return;
        };
        if inside_runtime() {
            // Should the thread not start, the value comes back in the error's closure and is
            // dropped here after all: nothing better is left.
            let _ = thread::Builder::new()
                .name("tokenflow-drop".into())
                .spawn(move || drop(value));
        }
    }
}

#[cfg(all(test, feature = "tokio"))]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// Reports the thread it is dropped on.
    struct Witness(mpsc::Sender<thread::ThreadId>);

    impl Drop for Witness {
        fn drop(&mut self) {
            let _ = self.0.send(thread::current().id());
        }
    }

    #[test]
    fn dropped_here_outside_a_runtime_and_elsewhere_inside_one() {
        let (sender, dropped) = mpsc::channel();
        drop(OffRuntime::new(Witness(sender.clone())));
        assert_eq!(dropped.recv().unwrap(), thread::current().id());

        let runtime = ::tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let here = runtime.block_on(async move {
            drop(OffRuntime::new(Witness(sender)));
            thread::current().id()
        });
        assert_ne!(dropped.recv().unwrap(), here);
    }

    #[test]
    fn work_leaves_the_runtime_thread_and_its_result_comes_back() {
        let runtime = ::tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (here, there) = runtime.block_on(async {
            (
                thread::current().id(),
                off_runtime(|| thread::current().id()),
            )
        });
        assert_ne!(here, there);
        assert_eq!(
            off_runtime(|| thread::current().id()),
            thread::current().id()
        );
    }
}
