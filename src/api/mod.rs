//! The HTTP seam: the HUB inference API over tiny_http. Handlers return
//! values; the server loop only moves requests in and responses out.

pub mod args;
pub mod auth;
pub mod body;
pub mod cors;
pub mod error;
pub mod fetch;
pub mod metrics;
pub mod multipart;
pub mod routes;
pub mod server;
pub mod stream;
pub mod wire;
