//! HTTP as a load generator must speak it to any server: origin-form request lines
//! with `Host` (RFC 9112), keep-alive reuse, HTTP/1.1 or HTTP/2 (h2c in clear, ALPN
//! h2 over TLS), and TLS with rustls for `https://` targets.

mod client;
mod connection;
mod h1;
mod target;

pub use client::{HttpClient, Template, user_agent};
pub use connection::{Body, Connector, Sender, Stream};
pub use h1::Outgoing;
pub use loadlab_proto::tls::Trust;
pub use target::{Security, Target};
