//! The run clock of an instance: how long it has actually run, the sum of the polls of the
//! futures driving it. Time the instance spends waiting (for a host call to complete, or for a
//! thread while other calls run) is not counted, so a busy host does not push innocent modules
//! past their deadlines.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Time an instance has run.
#[derive(Debug, Default)]
pub struct RunClock {
    state: Mutex<ClockState>,
}

#[derive(Debug, Default)]
struct ClockState {
    finished_polls: Duration,
    running_since: Option<Instant>,
}

impl RunClock {
    fn state(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The time run so far, including the poll in progress.
    pub fn elapsed(&self) -> Duration {
        let state = self.state();
        state.finished_polls + state.running_since.map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// Drives `future`, counting the time spent in its polls.
    pub async fn time<F: Future>(&self, future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(|cx| {
            self.state().running_since = Some(Instant::now());
            let poll = future.as_mut().poll(cx);
            let mut state = self.state();
            if let Some(since) = state.running_since.take() {
                state.finished_polls += since.elapsed();
            }
            poll
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_are_not_counted_but_work_is() {
        let clock = RunClock::default();
        clock
            .time(tokio::time::sleep(Duration::from_millis(100)))
            .await;
        assert!(
            clock.elapsed() < Duration::from_millis(50),
            "{:?}",
            clock.elapsed()
        );
        clock
            .time(async { std::thread::sleep(Duration::from_millis(60)) })
            .await;
        assert!(clock.elapsed() >= Duration::from_millis(60));
    }
}
