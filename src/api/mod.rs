//! The HTTP seam: the HUB inference API and the DeepStack one (`deepstack`)
//! over our own HTTP/1.1 connection layer (`http`). Handlers return values;
//! the server only moves requests in and responses out.

pub mod args;
pub mod auth;
pub mod body;
pub mod cors;
pub mod deepstack;
pub mod error;
pub mod fetch;
pub mod http;
pub mod metrics;
pub mod mjpeg;
pub mod multipart;
pub mod reply;
pub mod routes;
pub mod server;
pub mod session;
pub mod state;
pub mod stream;
pub mod ui;
