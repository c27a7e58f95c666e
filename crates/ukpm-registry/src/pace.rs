//! Registries that stall: every request and every body is held to a read timeout and a
//! minimum transfer rate, so a registry that accepts a connection and then goes silent (or
//! trickles) ends the operation with a clear error instead of hanging it.
//!
//! Only the registry's time counts. A download is timed while ukpm waits for the next chunk, not
//! while it writes the last one to disk; an upload while the connection has the body's last
//! piece and has not asked for the next, not while ukpm reads the store. What the kernel's
//! socket buffers hold counts as taken, so the wait for the response after an upload includes
//! the time the registry needs to drain them: on a link slower than those buffers over the read
//! timeout (megabytes over 30 s on loopback; far less on a real link, whose buffers stay near
//! its bandwidth times its round trip) a slow upload can be called a stall. reqwest's own
//! `read_timeout` is not used: its timer for the response head runs through the whole upload of
//! the request body, so it would cut off any upload longer than the timeout.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use reqwest::Response;
use tokio::time::Instant;

use crate::client::ClientConfig;
use crate::error::{Flow, RegistryError, Result};

/// The largest piece of an upload body handed to the connection at once: the connection asks
/// for the next piece only when it has room, so small pieces make the registry's pace visible.
const UPLOAD_PIECE: usize = 16 << 10;

/// How slowly a registry may answer, from [`ClientConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pace {
    /// The longest silence: no byte for this long is a stall.
    pub(crate) idle: Duration,
    /// The minimum rate in bytes per second (0: none).
    pub(crate) min_rate: u64,
    /// The span the minimum rate is measured over.
    pub(crate) window: Duration,
}

impl Pace {
    /// The pace a client's configuration asks for.
    pub(crate) fn from_config(config: &ClientConfig) -> Pace {
        Pace {
            idle: config.read_timeout.max(Duration::from_millis(1)),
            min_rate: config.min_rate,
            window: config.min_rate_window.max(Duration::from_millis(1)),
        }
    }
}

/// Why a transfer was given up on.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    /// Nothing for `idle`.
    Silent(Flow, Duration),
    /// `bytes` in `time` of the registry's time, under the minimum.
    Slow(Flow, u64, Duration),
}

impl Verdict {
    fn into_error(self, pace: Pace, registry: &str, what: &str) -> RegistryError {
        match self {
            Verdict::Silent(flow, idle) => RegistryError::Stalled {
                registry: registry.to_string(),
                what: what.to_string(),
                flow,
                idle,
            },
            Verdict::Slow(flow, bytes, time) => RegistryError::TooSlow {
                registry: registry.to_string(),
                what: what.to_string(),
                flow,
                rate: (bytes as f64 / time.as_secs_f64().max(1e-3)) as u64,
                window: time,
                minimum: pace.min_rate,
            },
        }
    }
}

/// The minimum-rate bookkeeping: bytes and the registry's time in the current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    bytes: u64,
    time: Duration,
}

impl Window {
    const EMPTY: Window = Window {
        bytes: 0,
        time: Duration::ZERO,
    };

    /// Adds `bytes` moved in `time`; a verdict when a whole window fell short of the minimum.
    fn add(&mut self, pace: Pace, flow: Flow, bytes: u64, time: Duration) -> Result<(), Verdict> {
        self.bytes += bytes;
        self.time += time;
        if pace.min_rate == 0 || self.time < pace.window {
            return Ok(());
        }
        let needed = (pace.min_rate as f64 * self.time.as_secs_f64()) as u64;
        let window = std::mem::replace(self, Window::EMPTY);
        if window.bytes < needed {
            return Err(Verdict::Slow(flow, window.bytes, window.time));
        }
        Ok(())
    }
}

/// The watch on a response body: each chunk is awaited at most the read timeout, and the bytes
/// over the registry's time are held to the minimum rate.
#[derive(Debug)]
pub(crate) struct BodyWatch {
    pace: Pace,
    window: Window,
}

impl BodyWatch {
    pub(crate) fn new(pace: Pace) -> BodyWatch {
        BodyWatch {
            pace,
            window: Window::EMPTY,
        }
    }

    /// The next chunk of `response`, or a stall.
    pub(crate) async fn chunk(
        &mut self,
        response: &mut Response,
        registry: &str,
        what: &str,
    ) -> Result<Option<Bytes>> {
        let started = Instant::now();
        let chunk = match tokio::time::timeout(self.pace.idle, response.chunk()).await {
            Err(_) => {
                return Err(
                    Verdict::Silent(Flow::Download, self.pace.idle).into_error(self.pace, registry, what)
                );
            }
            Ok(chunk) => chunk.map_err(|source| RegistryError::network(registry, source))?,
        };
        let bytes = chunk.as_ref().map_or(0, |c| c.len() as u64);
        // The last, short window of a body that ended is not judged: it may be a few bytes.
        if chunk.is_some() {
            self.window
                .add(self.pace, Flow::Download, bytes, started.elapsed())
                .map_err(|verdict| verdict.into_error(self.pace, registry, what))?;
        }
        Ok(chunk)
    }
}

/// Where an upload body stands, shared by the body (which the connection polls) and the
/// watchdog racing the request.
#[derive(Debug)]
struct UploadState {
    /// Since when the registry has owed progress: the last piece taken, or when the request or
    /// the store's last read began.
    since: Instant,
    /// Whether ukpm itself is producing the next piece (reading the store): not the registry's
    /// time.
    producing: bool,
    /// Whether the whole body was taken (the registry now owes the response).
    done: bool,
    window: Window,
    /// A verdict reached while the body was polled.
    verdict: Option<Verdict>,
}

/// The progress of one request, shared with its (optional) body.
#[derive(Debug, Clone)]
struct Progress(Arc<Mutex<UploadState>>);

impl Progress {
    fn new(has_body: bool) -> Progress {
        Progress(Arc::new(Mutex::new(UploadState {
            since: Instant::now(),
            producing: false,
            done: !has_body,
            window: Window::EMPTY,
            verdict: None,
        })))
    }

    fn with<T>(&self, f: impl FnOnce(&mut UploadState) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// When to look again, and the verdict if the registry has been silent too long.
    fn check(&self, pace: Pace) -> (Instant, Option<Verdict>) {
        self.with(|s| {
            if let Some(verdict) = s.verdict {
                return (Instant::now(), Some(verdict));
            }
            if s.producing {
                return (Instant::now() + pace.idle, None);
            }
            let deadline = s.since + pace.idle;
            if Instant::now() >= deadline {
                let flow = if s.done { Flow::Download } else { Flow::Upload };
                return (deadline, Some(Verdict::Silent(flow, pace.idle)));
            }
            (deadline, None)
        })
    }
}

/// A request body that reports each piece the connection takes to a [`Progress`], in pieces of
/// at most [`UPLOAD_PIECE`] bytes, and fails once the registry takes it below the minimum rate.
struct Watched {
    inner: reqwest::Body,
    pending: Bytes,
    progress: Progress,
    pace: Pace,
}

impl Watched {
    fn take(&mut self) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let piece = self.pending.split_to(self.pending.len().min(UPLOAD_PIECE));
        let len = piece.len() as u64;
        let pace = self.pace;
        // The connection may never ask again after the last piece (the body says it ended):
        // from then on the registry owes the response.
        let last = self.pending.is_empty() && self.inner.is_end_stream();
        let verdict = self.progress.with(|s| {
            let now = Instant::now();
            let time = now.saturating_duration_since(s.since);
            s.since = now;
            s.producing = false;
            s.done |= last;
            let result = s.window.add(pace, Flow::Upload, len, time);
            if let Err(verdict) = result {
                s.verdict = Some(verdict);
            }
            result
        });
        match verdict {
            Ok(()) => Poll::Ready(Some(Ok(Frame::data(piece)))),
            Err(_) => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the registry took the upload below the minimum rate",
            )))),
        }
    }
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if !this.pending.is_empty() {
            return this.take();
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => {
                    // The registry took everything so far; until the store gives more, the wait
                    // is ukpm's, not the registry's.
                    this.progress.with(|s| s.producing = true);
                    return Poll::Pending;
                }
                Poll::Ready(None) => {
                    this.progress.with(|s| {
                        s.since = Instant::now();
                        s.producing = false;
                        s.done = true;
                    });
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(std::io::Error::other(e)))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if data.is_empty() => {}
                    Ok(data) => {
                        this.progress.with(|s| {
                            if s.producing {
                                // The store's read is over: the registry's clock starts again.
                                s.since = Instant::now();
                                s.producing = false;
                            }
                        });
                        this.pending = data;
                        return this.take();
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        let pending = self.pending.len() as u64;
        hint.set_lower(hint.lower() + pending);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + pending);
        }
        hint
    }
}

/// Sends `request` with `http`, giving up when the registry stays silent for the read timeout
/// before the response head (counting from the last piece of the body it took), or takes the
/// body below the minimum rate.
pub(crate) async fn execute(
    http: &reqwest::Client,
    mut request: reqwest::Request,
    pace: Pace,
    registry: &str,
    what: &str,
) -> Result<Response> {
    let body = request.body_mut().take();
    let progress = Progress::new(body.is_some());
    if let Some(inner) = body {
        *request.body_mut() = Some(reqwest::Body::wrap(Watched {
            inner,
            pending: Bytes::new(),
            progress: progress.clone(),
            pace,
        }));
    }
    let send = http.execute(request);
    tokio::pin!(send);
    loop {
        let (deadline, verdict) = progress.check(pace);
        if let Some(verdict) = verdict {
            return Err(verdict.into_error(pace, registry, what));
        }
        if let Ok(result) = tokio::time::timeout_at(deadline, &mut send).await {
            // A body that failed because the registry took it too slowly says so.
            return result.map_err(|source| match progress.with(|s| s.verdict) {
                Some(verdict) => verdict.into_error(pace, registry, what),
                None => RegistryError::network(registry, source),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace() -> Pace {
        Pace {
            idle: Duration::from_secs(30),
            min_rate: 1024,
            window: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_window_under_the_minimum_rate_is_a_verdict() {
        let mut window = Window::EMPTY;
        // 59 s of 1 KiB/s: not judged yet.
        assert!(
            window
                .add(pace(), Flow::Download, 59 * 1024, Duration::from_secs(59))
                .is_ok()
        );
        // The 60th second brings too little.
        let verdict = window.add(pace(), Flow::Download, 10, Duration::from_secs(1));
        assert!(
            matches!(verdict, Err(Verdict::Slow(Flow::Download, _, _))),
            "{verdict:?}"
        );
        // The window starts over after a verdict or a pass.
        assert_eq!(window.bytes, 0);
        assert!(
            window
                .add(pace(), Flow::Upload, 61 * 1024, Duration::from_secs(60))
                .is_ok()
        );
    }

    #[test]
    fn no_minimum_rate_never_judges() {
        let mut window = Window::EMPTY;
        let pace = Pace {
            min_rate: 0,
            ..pace()
        };
        assert!(
            window
                .add(pace, Flow::Download, 0, Duration::from_secs(3600))
                .is_ok()
        );
    }
}
