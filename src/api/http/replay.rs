//! The request loop over bytes in memory, for fuzzing.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;

use super::{Body, Handler, Limits, Refusal, Request, Response, Shared, Slots, Transport, serve_connection};

/// Runs one connection over `input` (as if a client sent it all and then
/// closed) with a handler that reads each body whole and answers its length;
/// returns what was written back. For fuzzing: no panic, and every answer a
/// well-formed response.
#[doc(hidden)]
pub fn replay(input: &[u8], limits: Limits) -> Vec<u8> {
    struct Replay {
        input: io::Cursor<Vec<u8>>,
        output: Vec<u8>,
    }
    impl Read for Replay {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }
    impl Write for Replay {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Transport for &mut Replay {
        fn set_read_timeout(&self, _: Option<Duration>) -> io::Result<()> {
            Ok(())
        }
        fn shutdown_write(&self) -> io::Result<()> {
            Ok(())
        }
    }
    struct Count;
    impl Handler for Count {
        fn handle(&self, request: Request<'_>) -> Response {
            let mut sink = Vec::new();
            let text = match request.body.take(1 << 20).read_to_end(&mut sink) {
                Ok(n) => format!("{n}"),
                Err(e) => format!("error: {e}"),
            };
            Response { status: 200, headers: vec![], body: Body::Full(text.into_bytes()), close: false }
        }
        fn refuse(&self, refusal: &Refusal) -> Response {
            Response {
                status: 400,
                headers: vec![],
                body: Body::Full(format!("{refusal:?}").into_bytes()),
                close: true,
            }
        }
        fn light(&self, _: &str, _: &str) -> bool {
            false
        }
    }
    let shared = Shared {
        limits,
        handler: Arc::new(Count),
        open: AtomicUsize::new(0),
        slots: Slots::new(1),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let mut replay = Replay { input: io::Cursor::new(input.to_vec()), output: Vec::new() };
    serve_connection(&mut replay, &shared);
    replay.output
}
