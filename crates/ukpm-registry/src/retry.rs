//! One retry policy for every request the client sends: which failures are worth another
//! attempt, and how long to wait before it.
//!
//! A request is retried after a transient transport error (the connection was refused, reset
//! or timed out, or its body broke off) and after 408, 429, 500, 502, 503 and 504, waiting what
//! `Retry-After` asks (seconds or an HTTP date) or else an exponential backoff, never longer
//! than [`ClientConfig::max_backoff`]. Each attempt calls the caller's closure again, so the
//! request, and a streamed body with it, is built anew rather than resent from a spent stream.

use std::future::Future;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Response, StatusCode};

use crate::client::ClientConfig;
use crate::error::{RegistryError, Result};

/// How often and how patiently requests are retried, taken from [`ClientConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub(crate) retries: u32,
    /// The first backoff; each retry doubles it.
    pub(crate) backoff: Duration,
    /// The longest single wait, whatever the registry asks.
    pub(crate) max_backoff: Duration,
}

impl RetryPolicy {
    /// The policy a client's configuration describes.
    pub(crate) fn from_config(config: &ClientConfig) -> RetryPolicy {
        RetryPolicy {
            retries: config.retries,
            backoff: config.backoff,
            max_backoff: config.max_backoff,
        }
    }

    /// The same waits, but no retry: for callers that recover by other means (a chunked upload
    /// asks the registry where it stands instead of resending).
    pub(crate) fn once(self) -> RetryPolicy {
        RetryPolicy { retries: 0, ..self }
    }

    /// How long to wait before retry number `attempt + 1`: what the registry asked for if it
    /// did, else the exponential backoff; capped by `max_backoff` either way.
    pub(crate) fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponential = self.backoff.saturating_mul(1 << attempt.min(16));
        retry_after.unwrap_or(exponential).min(self.max_backoff)
    }

    /// Runs `attempt` until it gives a response that is not transient, fails for good, or the
    /// retries are spent (then the last response or error is returned as it is).
    ///
    /// `attempt` is called once per try and must build its request from scratch.
    pub(crate) async fn run<F, Fut>(&self, registry: &str, what: &str, mut attempt: F) -> Result<Response>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Response>>,
    {
        let mut tries = 0u32;
        loop {
            let retry_after = match attempt().await {
                Ok(response) if is_transient_status(response.status()) && tries < self.retries => {
                    tracing::debug!(registry, what, status = %response.status(), tries, "retrying after a transient status");
                    retry_after(response.headers(), SystemTime::now())
                }
                Err(error) if is_transient_error(&error) && tries < self.retries => {
                    tracing::debug!(registry, what, %error, tries, "retrying after a transport error");
                    None
                }
                other => return other,
            };
            tokio::time::sleep(self.delay(tries, retry_after)).await;
            tries += 1;
        }
    }
}

/// How many bytes a broken body must have delivered for its break to start the count of
/// failures in a row anew: a registry that cuts every connection after a few bytes still runs
/// out of retries.
pub(crate) const RESUME_PROGRESS: u64 = 64 << 10;

/// The retry budget of one download whose body may break mid-way and be resumed with a
/// `Range` request at the byte reached: [`RetryPolicy::retries`] breaks in a row, where a
/// connection that delivered at least [`RESUME_PROGRESS`] bytes before it broke starts the
/// count anew (a long download through a link that drops now and then completes; one that
/// makes no headway fails like any other request).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resumes {
    policy: RetryPolicy,
    /// Breaks in a row without headway.
    failures: u32,
    /// The byte count at the last (re)start.
    since: u64,
}

impl Resumes {
    /// A download's budget under `policy`.
    pub(crate) fn new(policy: RetryPolicy) -> Resumes {
        Resumes {
            policy,
            failures: 0,
            since: 0,
        }
    }

    /// Whether a body broken by `error` after `received` bytes may be resumed, and after how
    /// long a wait; `None` when the error is not a broken connection or the budget is spent.
    pub(crate) fn next(&mut self, error: &RegistryError, received: u64) -> Option<Duration> {
        // hyper reports a body cut short of its Content-Length as a decode error.
        let broken = is_transient_error(error)
            || matches!(error, RegistryError::Truncated { .. })
            || matches!(error, RegistryError::Network { source, .. } if source.is_decode());
        if !broken {
            return None;
        }
        if received.saturating_sub(self.since) >= RESUME_PROGRESS {
            self.failures = 0;
        }
        if self.failures >= self.policy.retries {
            return None;
        }
        let wait = self.policy.delay(self.failures, None);
        self.failures += 1;
        self.since = received;
        Some(wait)
    }
}

/// 408, 429, the gateway errors that say "try again later" (502, 503, 504), and 500, which
/// registries also answer for passing trouble (docker-registry to a HEAD racing an upload of
/// the same blob, a proxy in front that lost its upstream); go-containerregistry retries the
/// same set.
pub(crate) fn is_transient_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// Transport failures that another attempt may not meet: connecting, timing out, a request or
/// response body broken off, a registry that stalled before answering.
pub(crate) fn is_transient_error(error: &RegistryError) -> bool {
    match error {
        RegistryError::Network { source, .. } => {
            source.is_connect() || source.is_timeout() || source.is_request() || source.is_body()
        }
        other => other.is_stall(),
    }
}

/// The wait a response's `Retry-After` asks for, as of `now`: delta-seconds or an HTTP date
/// (RFC 9110 §10.2.3; IMF-fixdate and the obsolete RFC 850 and asctime forms). A date in the
/// past means now; a missing or unreadable value is `None`, so the backoff applies.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is still "a very long time": the cap decides.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn policy() -> RetryPolicy {
        RetryPolicy::from_config(&ClientConfig::default())
    }

    fn after(value: &str, now: SystemTime) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        retry_after(&headers, now)
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = policy();
        assert_eq!(policy.delay(0, None), Duration::from_millis(200));
        assert_eq!(policy.delay(2, None), Duration::from_millis(800));
        assert_eq!(policy.delay(10, None), Duration::from_secs(10));
        assert_eq!(policy.delay(u32::MAX, None), Duration::from_secs(10));
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(3600))),
            Duration::from_secs(10)
        );
        assert_eq!(policy.delay(3, Some(Duration::ZERO)), Duration::ZERO);
        assert_eq!(policy.once().retries, 0);
        assert_eq!(policy.once().backoff, policy.backoff);
    }

    #[test]
    fn retry_after_takes_seconds() {
        let now = SystemTime::now();
        assert_eq!(after("0", now), Some(Duration::ZERO));
        assert_eq!(after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        // Capped like any other wait.
        assert_eq!(policy().delay(0, after("86400", now)), Duration::from_secs(10));
    }

    #[test]
    fn retry_after_takes_http_dates() {
        // Sun, 06 Nov 1994 08:49:37 GMT, the RFC's example.
        let date = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let now = date - Duration::from_secs(5);
        for value in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(after(value, now), Some(Duration::from_secs(5)), "{value}");
        }
        // A date in the past: retry now.
        let later = date + Duration::from_secs(60);
        assert_eq!(
            after("Sun, 06 Nov 1994 08:49:37 GMT", later),
            Some(Duration::ZERO)
        );
        // Far in the future: the cap decides.
        let early = date - Duration::from_secs(86_400);
        assert_eq!(
            policy().delay(0, after("Sun, 06 Nov 1994 08:49:37 GMT", early)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn unreadable_retry_after_falls_back_to_the_backoff() {
        let now = SystemTime::now();
        for value in [
            "",
            "soon",
            "-1",
            "1.5",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994",
        ] {
            assert_eq!(after(value, now), None, "{value:?}");
        }
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
        assert_eq!(policy().delay(1, after("soon", now)), Duration::from_millis(400));
    }

    #[test]
    fn a_resumed_download_may_break_again_while_it_makes_headway() {
        let policy = RetryPolicy {
            retries: 2,
            ..policy()
        };
        let broken = RegistryError::Truncated {
            registry: "r".into(),
            what: "blob".into(),
            expected: 10,
            actual: 5,
        };
        let mut resumes = Resumes::new(policy);
        // Two breaks without headway: the budget is spent.
        assert_eq!(resumes.next(&broken, 0), Some(Duration::from_millis(200)));
        assert_eq!(resumes.next(&broken, 10), Some(Duration::from_millis(400)));
        assert_eq!(resumes.next(&broken, 20), None);
        // Breaks each after real headway go on for as long as the body keeps coming.
        let mut resumes = Resumes::new(policy);
        for n in 1..10 {
            assert!(resumes.next(&broken, n * RESUME_PROGRESS).is_some(), "{n}");
        }
        // What is not a broken connection is never resumed.
        let refused = RegistryError::TooLarge {
            registry: "r".into(),
            what: "blob".into(),
            limit: 1,
        };
        assert_eq!(Resumes::new(policy).next(&refused, 0), None);
    }

    #[test]
    fn transient_statuses() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(
                is_transient_status(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
        for status in [200, 401, 404, 413, 416, 501] {
            assert!(
                !is_transient_status(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
    }
}
