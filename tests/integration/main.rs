//! One integration test binary: the real `yolod` started on a free port
//! (see `support`), checked from the outside.

mod annotate;
mod api;
mod camera;
mod deepstack;
mod families;
mod hardening;
mod logging;
mod malformed;
mod mqtt;
mod page;
mod reliability;
mod rtsp;
mod service;
mod sources;
mod support;
mod tasks;
