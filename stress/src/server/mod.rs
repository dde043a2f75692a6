//! `grpc-stress server`: the Stress and Chat services, gRPC health and reflection,
//! optional TLS, explicit limits, and Prometheus metrics on their own port.

mod chat_service;
mod connections;
mod deadline;
mod limits;
pub mod metrics;
mod stress_service;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::proto::chat_server::ChatServer;
use crate::proto::stress_server::StressServer;
use crate::units::{parse_optional_address, positive_duration, positive_u32, positive_usize};
use chat_service::ChatService;
use connections::CountedStream;
use limits::InFlightLimit;
use stress_service::StressService;

/// Options of `grpc-stress server`.
#[derive(Clone, Debug, clap::Args)]
pub struct ServerOptions {
    /// Address to serve gRPC on.
    #[arg(long, env = "GRPC_STRESS_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// PEM certificate chain: serve TLS (needs --tls-key). See `grpc-stress certs`.
    #[arg(long, env = "GRPC_STRESS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "GRPC_STRESS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Address for Prometheus `/metrics`, or `none`.
    // Spelled out so clap takes the parser's `Option` as the value, not as "optional".
    #[arg(long, env = "GRPC_STRESS_METRICS_LISTEN", default_value = "127.0.0.1:50052", value_parser = parse_optional_address)]
    pub metrics_listen: std::option::Option<SocketAddr>,

    /// Most concurrent streams a client may open on one HTTP/2 connection (the
    /// per-connection limit; further streams wait at the client).
    #[arg(long, env = "GRPC_STRESS_MAX_CONCURRENT_STREAMS", default_value_t = 256, value_parser = positive_u32)]
    pub max_concurrent_streams: u32,

    /// Most RPCs in flight across the server; more are refused at once with
    /// RESOURCE_EXHAUSTED (load shedding) instead of queueing.
    #[arg(long, env = "GRPC_STRESS_MAX_IN_FLIGHT", default_value_t = 10_000, value_parser = positive_usize)]
    pub max_in_flight: usize,

    /// HTTP/2 keepalive ping interval.
    #[arg(long, env = "GRPC_STRESS_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = positive_duration)]
    pub keepalive_interval: Duration,

    /// Close a connection whose keepalive ping is not answered within this time.
    #[arg(long, env = "GRPC_STRESS_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub keepalive_timeout: Duration,

    /// Interval between pings on a chat subscription.
    #[arg(long, env = "GRPC_STRESS_CHAT_PING_INTERVAL", default_value = "2s", value_parser = positive_duration)]
    pub chat_ping_interval: Duration,

    /// After SIGTERM, how long open calls (endless streams included) may go on
    /// before the server exits anyway.
    #[arg(long, env = "GRPC_STRESS_SHUTDOWN_GRACE", default_value = "2s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    #[command(flatten)]
    pub process: crate::ProcessOptions,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("reading {path}: {source}")]
    ReadTls { path: PathBuf, source: std::io::Error },
    #[error("TLS configuration: {0}")]
    Tls(tonic::transport::Error),
    #[error("serving gRPC: {0}")]
    Serve(tonic::transport::Error),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("metrics listener on {address}: {source}")]
    MetricsListen { address: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Recorder(#[from] loadlab_telemetry::RecorderError),
}

/// Serves on `listener` until `shutdown` resolves; then open calls get
/// `--shutdown-grace` to finish before the server returns regardless.
pub async fn run(
    options: ServerOptions,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let recorder = loadlab_telemetry::MetricsRecorder::install("grpc-stress", &metrics::histograms())?;
    metrics::describe();
    // Registered at zero, so "nothing shed" is a series, not a gap.
    ::metrics::counter!(metrics::RPCS_SHED).increment(0);
    if let Some(ceiling) = options.process.max_heap {
        ::metrics::gauge!(metrics::HEAP_CEILING).set(ceiling as f64);
    }
    if let Some(address) = options.metrics_listen {
        let metrics_listener =
            TcpListener::bind(address).await.map_err(|source| ServerError::MetricsListen { address, source })?;
        tokio::spawn(serve_metrics(metrics_listener, recorder));
    }

    let limit = InFlightLimit::new(options.max_in_flight);
    let stress = StressServer::new(StressService { limit: limit.clone() })
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Zstd);
    let chat = ChatServer::new(ChatService::new(limit, options.chat_ping_interval))
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd);
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<StressServer<StressService>>().await;
    health_reporter.set_serving::<ChatServer<ChatService>>().await;
    // Both reflection versions: grpcurl and newer clients speak v1, Python's
    // grpcio-reflection and older tools only v1alpha. Each lists every service served,
    // the other version's reflection service included.
    let reflection = |other_reflection: &'static [u8]| {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(other_reflection)
    };
    let reflection_v1 = reflection(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET).build_v1()?;
    let reflection_v1alpha = reflection(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET).build_v1alpha()?;

    let mut builder = Server::builder()
        .layer(deadline::DeadlineLayer)
        .max_concurrent_streams(Some(options.max_concurrent_streams))
        .http2_keepalive_interval(Some(options.keepalive_interval))
        .http2_keepalive_timeout(Some(options.keepalive_timeout));
    if let (Some(cert), Some(key)) = (&options.tls_cert, &options.tls_key) {
        let read =
            |path: &PathBuf| std::fs::read(path).map_err(|source| ServerError::ReadTls { path: path.clone(), source });
        let identity = Identity::from_pem(read(cert)?, read(key)?);
        builder = builder.tls_config(ServerTlsConfig::new().identity(identity)).map_err(ServerError::Tls)?;
    }
    tracing::info!(
        address = %listener.local_addr().map_err(|source| ServerError::MetricsListen { address: options.listen, source })?,
        tls = options.tls_cert.is_some(),
        "grpc-stress server listening"
    );
    // Accept errors (e.g. too many open files) end one accept, not the server.
    let incoming = TcpListenerStream::new(listener).filter_map(|accepted| match accepted {
        Ok(stream) => Some(Ok::<_, std::io::Error>(CountedStream::new(stream))),
        Err(error) => {
            tracing::warn!(%error, "accept failed");
            None
        }
    });
    let stopping = tokio_util::sync::CancellationToken::new();
    let signalled = stopping.clone();
    let serving = builder
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(stress)
        .add_service(chat)
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            signalled.cancel();
        });
    let grace = options.shutdown_grace;
    tokio::select! {
        served = serving => served.map_err(ServerError::Serve),
        _ = async { stopping.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::info!(?grace, "calls still open after the shutdown grace; exiting");
            Ok(())
        }
    }
}

async fn serve_metrics(listener: TcpListener, recorder: loadlab_telemetry::MetricsRecorder) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let recorder = recorder.clone();
            async move {
                ::metrics::gauge!(metrics::LIVE_HEAP).set(crate::heap::live_bytes() as f64);
                recorder.render_async().await
            }
        }),
    );
    if let Err(error) = axum::serve(listener, app).await {
        tracing::warn!(%error, "metrics listener stopped");
    }
}
