//! Traces: every `tracing` span of a service is an OpenTelemetry span too, so one order is one
//! trace across the four services (the outbox carries the context through the broker,
//! `outbox::trace`), and every JSON log line names its `trace_id` and `span_id`.
//!
//! | variable                              | effect                                           |
//! |---------------------------------------|--------------------------------------------------|
//! | `OTEL_EXPORTER_OTLP_ENDPOINT`         | export spans over OTLP/HTTP (protobuf) to `<it>/v1/traces`; unset: export nothing |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`  | the full traces URL instead                      |
//! | `OTEL_BSP_SCHEDULE_DELAY`, …          | the batch exporter's standard settings           |
//!
//! Without an endpoint, spans still get trace and span ids (so logs carry them and the context
//! still travels), but nothing is sent anywhere. Health probes and `/metrics` are left out of
//! the traces: their spans are at `debug` level, and only `info` spans and above are exported.

use std::sync::{Mutex, OnceLock, PoisonError};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::registry::LookupSpan;

use crate::config::Lookup;

/// The variable that turns the export on.
pub const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The variable naming the traces URL itself.
pub const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";

/// The process's tracer provider, kept to flush it at exit.
static PROVIDER: OnceLock<Mutex<Option<SdkTracerProvider>>> = OnceLock::new();

/// Why traces cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("the OTLP trace exporter cannot be built: {0}")]
pub struct TracesError(String);

/// The layer that turns `service_name`'s `tracing` spans into OpenTelemetry spans, exported
/// over OTLP when the environment names an endpoint.
///
/// # Errors
/// [`TracesError`] when the exporter cannot be built (an endpoint that is not a URL).
pub fn layer<S>(
    service_name: &'static str,
    lookup: Lookup<'_>,
) -> Result<impl Layer<S> + Send + Sync + 'static, TracesError>
where
    S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    let provider = provider(service_name, lookup)?;
    let tracer: SdkTracer = provider.tracer(service_name);
    let slot = PROVIDER.get_or_init(|| Mutex::new(None));
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(provider);
    Ok(tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(LevelFilter::INFO))
}

fn provider(
    service_name: &'static str,
    lookup: Lookup<'_>,
) -> Result<SdkTracerProvider, TracesError> {
    let resource = Resource::builder().with_service_name(service_name).build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let exporting = lookup(ENDPOINT).is_some() || lookup(TRACES_ENDPOINT).is_some();
    if !exporting {
        return Ok(builder.build());
    }
    // The exporter reads the standard variables itself. Its blocking HTTP client runs on the
    // batch processor's own thread; built on a thread of its own, it never meets the async
    // runtime it would refuse to start inside.
    let exporter = std::thread::spawn(|| {
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
    })
    .join()
    .map_err(|_| TracesError("building it panicked".into()))?
    .map_err(|error| TracesError(error.to_string()))?;
    Ok(builder.with_batch_exporter(exporter).build())
}

/// Exports what is still buffered and stops the exporter (at the end of `main`; spans of a
/// process that exits without it are lost).
pub fn shutdown() {
    let provider = PROVIDER
        .get()
        .and_then(|slot| slot.lock().unwrap_or_else(PoisonError::into_inner).take());
    if let Some(provider) = provider {
        // Nothing to do about a failure at exit but to exit.
        let _ = provider.shutdown();
    }
}

/// The trace and span ids of the current span, as the log lines carry them.
pub(crate) fn current_ids() -> Option<(String, String)> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| {
        (
            span_context.trace_id().to_string(),
            span_context.span_id().to_string(),
        )
    })
}
