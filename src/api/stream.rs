//! `GET /v1/stream`: the camera log lines as Server-Sent Events. Each client
//! gets a small bounded queue; a client too slow to keep up loses lines, it
//! never slows the cameras down.

use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Lines buffered per client before it starts losing them.
const CLIENT_QUEUE: usize = 64;
/// A comment line is sent this often so proxies keep the connection.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The handler slots that long-lived streams (event streams and MJPEG
/// viewers) may hold together; the rest stay for the API.
pub struct Slots {
    used: Arc<AtomicUsize>,
    max: usize,
}

/// One held slot, given back when dropped (when its stream ends).
pub struct SlotGuard(Arc<AtomicUsize>);

impl Slots {
    pub fn new(max: usize) -> Slots {
        Slots { used: Arc::new(AtomicUsize::new(0)), max }
    }

    /// A slot, or `None` when all are held.
    pub fn acquire(&self) -> Option<SlotGuard> {
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < self.max).then_some(n + 1))
            .ok()
            .map(|_| SlotGuard(self.used.clone()))
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Fans lines out to the connected SSE clients.
#[derive(Default)]
pub struct Hub {
    clients: Mutex<Vec<SyncSender<Arc<[u8]>>>>,
}

impl Hub {
    /// Sends `line` to every client that has room; forgets disconnected ones.
    pub fn publish(&self, line: &[u8]) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.is_empty() {
            return;
        }
        let line: Arc<[u8]> = line.into();
        clients.retain(|c| !matches!(c.try_send(line.clone()), Err(TrySendError::Disconnected(_))));
    }

    /// A new client's event stream, holding `slot` while it lasts.
    pub fn subscribe(&self, slot: SlotGuard) -> EventStream {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let (tx, rx) = mpsc::sync_channel(CLIENT_QUEUE);
        clients.push(tx);
        // A first comment makes the headers and the stream visible at once.
        EventStream { rx, pending: b": yolod camera stream\n\n".to_vec(), pos: 0, _slot: slot }
    }

    /// Ends every stream (shutdown).
    pub fn close(&self) {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub fn clients(&self) -> usize {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The body of one SSE response: `data: <json>\n\n` per line.
pub struct EventStream {
    rx: Receiver<Arc<[u8]>>,
    pending: Vec<u8>,
    pos: usize,
    _slot: SlotGuard,
}

impl Read for EventStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.pending.len() {
            self.pending.clear();
            self.pos = 0;
            match self.rx.recv_timeout(KEEP_ALIVE) {
                Ok(line) => {
                    self.pending.extend_from_slice(b"data: ");
                    self.pending.extend_from_slice(&line);
                    self.pending.extend_from_slice(b"\n\n");
                }
                Err(RecvTimeoutError::Timeout) => self.pending.extend_from_slice(b": keep-alive\n\n"),
                Err(RecvTimeoutError::Disconnected) => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len() - self.pos);
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_sse_events_and_close_ends_the_stream() {
        let hub = Hub::default();
        let mut stream = hub.subscribe(Slots::new(2).acquire().unwrap());
        hub.publish(br#"{"frame":1}"#);
        hub.close();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        assert_eq!(text, ": yolod camera stream\n\ndata: {\"frame\":1}\n\n");
    }

    #[test]
    fn client_limit_and_slow_clients() {
        let hub = Hub::default();
        let slots = Slots::new(1);
        let _a = hub.subscribe(slots.acquire().unwrap());
        assert!(slots.acquire().is_none());
        for i in 0..(CLIENT_QUEUE + 10) {
            hub.publish(format!("{i}").as_bytes()); // never blocks
        }
        assert_eq!(hub.clients(), 1);
        drop(_a);
        hub.publish(b"x");
        assert_eq!(hub.clients(), 0);
        assert!(slots.acquire().is_some(), "the slot came back with the stream");
    }
}
