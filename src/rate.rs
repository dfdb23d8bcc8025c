//! One token bucket for every rate limit of scangate's own writes: the controller's phase
//! Events (`scan::publisher`, which waits for its token) and first-sight scans
//! (`runtime::first_sight`, which stops for now when there is none).

use std::time::{Duration, Instant};

/// How fast a bucket refills: `per_second` tokens a second, holding `burst` at most.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    per_second: f64,
    burst: f64,
}

impl Rate {
    /// `qps` a second after a burst of `burst` (each at least 1).
    pub fn per_second(qps: u32, burst: u32) -> Self {
        Rate {
            per_second: f64::from(qps.max(1)),
            burst: f64::from(burst.max(1)),
        }
    }

    /// `n` a minute, refilled evenly over the minute, and `n` at once at most (at least 1).
    pub fn per_minute(n: u32) -> Self {
        let n = f64::from(n.max(1));
        Rate {
            per_second: n / 60.0,
            burst: n,
        }
    }
}

/// A token bucket. The rate is given at each take, so a rate read from configuration that
/// changes applies at once.
#[derive(Debug)]
pub struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn full(rate: Rate, now: Instant) -> Self {
        TokenBucket {
            tokens: rate.burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.at = now;
    }

    /// Takes a token at `now` if there is one.
    pub fn try_take(&mut self, rate: Rate, now: Instant) -> bool {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes a token at `now` and says how long to wait before using it (zero when one was
    /// there). A token taken ahead is owed: the next one is due that much later.
    pub fn take_owed(&mut self, rate: Rate, now: Instant) -> Duration {
        self.refill(rate, now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate.per_second)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_at_once_then_the_rate_is_owed() {
        let rate = Rate::per_second(10, 3);
        let start = Instant::now();
        let mut bucket = TokenBucket::full(rate, start);
        for _ in 0..3 {
            assert_eq!(bucket.take_owed(rate, start), Duration::ZERO);
        }
        // The fourth and fifth at once are owed: 0.1 s and 0.2 s from now.
        let fourth = bucket.take_owed(rate, start).as_secs_f64();
        let fifth = bucket.take_owed(rate, start).as_secs_f64();
        assert!((fourth - 0.1).abs() < 1e-9, "{fourth}");
        assert!((fifth - 0.2).abs() < 1e-9, "{fifth}");
    }

    #[test]
    fn tokens_come_back_at_the_rate_up_to_the_burst() {
        let rate = Rate::per_second(10, 3);
        let start = Instant::now();
        let mut bucket = TokenBucket::full(rate, start);
        for _ in 0..3 {
            bucket.take_owed(rate, start);
        }
        // 0.25 s later: 2.5 tokens back, so two at once and the third waits 0.05 s.
        let later = start + Duration::from_millis(250);
        assert_eq!(bucket.take_owed(rate, later), Duration::ZERO);
        assert_eq!(bucket.take_owed(rate, later), Duration::ZERO);
        let third = bucket.take_owed(rate, later).as_secs_f64();
        assert!((third - 0.05).abs() < 1e-9, "{third}");
        // An hour idle refills to the burst, not beyond.
        let hour = later + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(bucket.take_owed(rate, hour), Duration::ZERO);
        }
        assert!(bucket.take_owed(rate, hour) > Duration::ZERO);
    }

    #[test]
    fn a_rate_per_minute_refills_evenly() {
        let rate = Rate::per_minute(3);
        let start = Instant::now();
        let mut bucket = TokenBucket::full(rate, start);
        assert!((0..3).all(|_| bucket.try_take(rate, start)));
        assert!(!bucket.try_take(rate, start));
        // One token every 20 s at 3 a minute.
        assert!(!bucket.try_take(rate, start + Duration::from_secs(19)));
        assert!(bucket.try_take(rate, start + Duration::from_secs(20)));
        // Never more than a minute's worth.
        let later = start + Duration::from_secs(3600);
        assert!((0..3).all(|_| bucket.try_take(rate, later)));
        assert!(!bucket.try_take(rate, later));
    }

    #[test]
    fn a_refused_take_owes_nothing() {
        let rate = Rate::per_minute(1);
        let start = Instant::now();
        let mut bucket = TokenBucket::full(rate, start);
        assert!(bucket.try_take(rate, start));
        // Refused ten times at once: still one token a minute later, not ten owed.
        assert!((0..10).all(|_| !bucket.try_take(rate, start)));
        assert!(bucket.try_take(rate, start + Duration::from_secs(60)));
    }

    #[test]
    fn a_lower_rate_caps_the_tokens_held_at_once() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(Rate::per_minute(10), start);
        let lower = Rate::per_minute(2);
        assert!((0..2).all(|_| bucket.try_take(lower, start)));
        assert!(!bucket.try_take(lower, start));
    }
}
