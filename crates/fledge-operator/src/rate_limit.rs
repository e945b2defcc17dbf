//! A client-side rate limit on the API client, as client-go's `-kubeconfig-qps` and
//! `-kubeconfig-burst` set one: a token bucket holding up to `burst` requests, refilled at
//! `qps` per second. A request waits for a token before it is sent.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// A token bucket: `burst` tokens at most, `qps` more each second.
#[derive(Debug)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket. `qps` and `burst` are at least 1 (the configuration checks them).
    pub fn new(qps: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            qps: f64::from(qps.max(1)),
            burst,
            tokens: burst,
            updated: now,
        }
    }

    /// Takes a token at `now`; when none is left, how long until one is.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.qps))
        }
    }
}

/// A tower layer holding requests to `qps` per second with bursts of `burst`.
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    bucket: Arc<Mutex<TokenBucket>>,
}

impl RateLimitLayer {
    /// A limit of `qps` requests per second, `burst` at once.
    pub fn new(qps: u32, burst: u32) -> Self {
        Self {
            bucket: Arc::new(Mutex::new(TokenBucket::new(qps, burst, Instant::now()))),
        }
    }
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            bucket: self.bucket.clone(),
            permitted: false,
            sleep: None,
        }
    }
}

/// The service of [`RateLimitLayer`]: not ready until it holds a token.
pub struct RateLimit<S> {
    inner: S,
    bucket: Arc<Mutex<TokenBucket>>,
    permitted: bool,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("permitted", &self.permitted)
            .finish_non_exhaustive()
    }
}

impl<S, Request> tower::Service<Request> for RateLimit<S>
where
    S: tower::Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        while !self.permitted {
            if let Some(sleep) = self.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
            }
            let taken = match self.bucket.lock() {
                Ok(mut bucket) => bucket.take(Instant::now()),
                // A poisoned bucket cannot limit; let the request through.
                Err(_) => Ok(()),
            };
            match taken {
                Ok(()) => self.permitted = true,
                Err(wait) => self.sleep = Some(Box::pin(tokio::time::sleep(wait))),
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.permitted = false;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::Service;

    #[test]
    fn a_full_bucket_allows_the_burst_then_refills_at_qps() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(2, 3, start);
        for _ in 0..3 {
            assert_eq!(bucket.take(start), Ok(()));
        }
        let wait = bucket.take(start).expect_err("the burst is used up");
        assert_eq!(wait, Duration::from_millis(500), "2 per second");
        assert_eq!(bucket.take(start + Duration::from_millis(500)), Ok(()));
        // A long pause refills to the burst, not beyond.
        let later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(bucket.take(later), Ok(()));
        }
        assert!(bucket.take(later).is_err());
    }

    /// A service answering at once, counting its calls.
    #[derive(Clone, Default)]
    struct Echo(Arc<Mutex<u32>>);

    impl Service<u32> for Echo {
        type Response = u32;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<u32, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: u32) -> Self::Future {
            if let Ok(mut calls) = self.0.lock() {
                *calls += 1;
            }
            std::future::ready(Ok(request))
        }
    }

    #[tokio::test]
    async fn requests_beyond_the_burst_wait_for_tokens() {
        use tower::Layer;
        let echo = Echo::default();
        let mut limited = RateLimitLayer::new(50, 5).layer(echo.clone());
        let start = Instant::now();
        for request in 0..25 {
            let ready = std::future::poll_fn(|cx| limited.poll_ready(cx)).await;
            assert_eq!(ready, Ok(()));
            let answer = limited.call(request).await;
            assert_eq!(answer, Ok(request));
        }
        // 5 at once, then 20 more at 50 per second: 400 ms (timers may only be late).
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(390) && elapsed < Duration::from_secs(3),
            "{elapsed:?}"
        );
        assert_eq!(*echo.0.lock().expect("calls"), 25);
    }
}
