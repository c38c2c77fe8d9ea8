//! A cap on the log lines per second of one kind that any sender can
//! cause, such as failed client authentications. Without it, one address
//! sending wrong secrets as fast as it can wrote one WARN line per request
//! (about 13 MB/s on loopback), even while the rate limits returned 429.
//! Past the cap, lines are counted instead of written, and the next line
//! written reports how many were left out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A cap on the lines of one kind per second, shared as a `static`.
pub struct LogBudget {
    per_second: u64,
    /// The second (Unix time) that `written` counts.
    second: AtomicU64,
    written: AtomicU64,
    /// Lines left out since the last one written.
    left_out: AtomicU64,
}

impl LogBudget {
    pub const fn new(per_second: u64) -> Self {
        Self {
            per_second,
            second: AtomicU64::new(0),
            written: AtomicU64::new(0),
            left_out: AtomicU64::new(0),
        }
    }

    /// Returns `None` when the line must be left out, or the number of
    /// lines left out before it, which the line should report.
    pub fn admit(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        self.admit_at(now)
    }

    fn admit_at(&self, now: u64) -> Option<u64> {
        let second = self.second.load(Ordering::Relaxed);
        if second != now
            && self
                .second
                .compare_exchange(second, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.written.store(0, Ordering::Relaxed);
        }
        if self.written.fetch_add(1, Ordering::Relaxed) < self.per_second {
            Some(self.left_out.swap(0, Ordering::Relaxed))
        } else {
            self.left_out.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Returns at most the first `max` characters of `text`, for a value that
/// a sender chose (a presented `client_id`, say) and that a log line
/// repeats.
pub fn clip(text: &str, max: usize) -> &str {
    text.char_indices()
        .nth(max)
        .map_or(text, |(end, _)| &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_counts_lines_left_out() {
        let budget = LogBudget::new(2);
        assert_eq!(budget.admit_at(10), Some(0));
        assert_eq!(budget.admit_at(10), Some(0));
        assert_eq!(budget.admit_at(10), None);
        assert_eq!(budget.admit_at(10), None);
        assert_eq!(budget.admit_at(11), Some(2));
        assert_eq!(budget.admit_at(11), Some(0));
        assert_eq!(budget.admit_at(11), None);
    }

    #[test]
    fn clip_keeps_whole_characters() {
        assert_eq!(clip("abcdef", 3), "abc");
        assert_eq!(clip("ab", 3), "ab");
        assert_eq!(clip("ééé", 2), "éé");
    }
}
