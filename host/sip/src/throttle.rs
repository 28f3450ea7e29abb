//! Log lines that a flood cannot multiply: at most so many a second, and a count of the
//! others in the next line that is written.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A budget of log lines per second.
pub(crate) struct Throttle {
    per_second: u32,
    state: Mutex<State>,
}

struct State {
    second: Instant,
    written: u32,
    held_back: u64,
}

impl Throttle {
    /// At most `per_second` lines a second.
    pub(crate) fn new(per_second: u32) -> Self {
        Throttle {
            per_second,
            state: Mutex::new(State {
                second: Instant::now(),
                written: 0,
                held_back: 0,
            }),
        }
    }

    /// Whether a line may be written now: `Some(n)` with the lines held back since the last
    /// one written (for it to say so), `None` if this one is held back.
    pub(crate) fn admit(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now.duration_since(state.second) >= Duration::from_secs(1) {
            state.second = now;
            state.written = 0;
        }
        if state.written >= self.per_second {
            state.held_back += 1;
            return None;
        }
        state.written += 1;
        Some(std::mem::take(&mut state.held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_cut_to_the_budget_and_the_next_line_counts_the_rest() {
        let throttle = Throttle::new(3);
        let admitted: Vec<Option<u64>> = (0..10).map(|_| throttle.admit()).collect();
        assert_eq!(admitted[..3], [Some(0), Some(0), Some(0)]);
        assert!(admitted[3..].iter().all(Option::is_none));
        std::thread::sleep(Duration::from_millis(1010));
        assert_eq!(throttle.admit(), Some(7), "the seven held back");
        assert_eq!(throttle.admit(), Some(0));
    }
}
