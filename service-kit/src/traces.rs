//! Traces: every `tracing` span of a service is an OpenTelemetry span too, so one order is one
//! trace across the four services (the outbox carries the context through the broker,
//! `outbox::trace`), and every JSON log line names its `trace_id` and `span_id`.
//!
//! | variable                              | effect                                           |
//! |---------------------------------------|--------------------------------------------------|
//! | `OTEL_EXPORTER_OTLP_ENDPOINT`         | export spans over OTLP/HTTP (protobuf) to `<it>/v1/traces`; unset: export nothing |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`  | the full traces URL instead                      |
//! | `OTEL_BSP_SCHEDULE_DELAY`, …          | the batch exporter's standard settings           |
//! | `OTEL_SDK_DISABLED`                   | `true`: no OpenTelemetry at all (no trace ids in logs, no context sent on) |
//!
//! Without an endpoint, spans still get trace and span ids (so logs carry them and the context
//! still travels), but nothing is sent anywhere, and the spans record nothing else (no events,
//! locations or timings: nobody would see them). `OTEL_SDK_DISABLED=true` (the specification's
//! switch) removes the layer itself, and with it its cost per span (BENCHMARKS.md measures it).
//! Health probes and `/metrics` are left out of the traces: their spans are at `debug` level,
//! and only `info` spans and above are exported.

use std::sync::{Mutex, OnceLock, PoisonError};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::{Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;

use crate::config::Lookup;

/// The variable that turns the export on.
pub const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The variable naming the traces URL itself.
pub const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// The variable that turns OpenTelemetry off (`true`, any case), as the specification names it.
pub const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";

/// The process's tracer provider, kept to flush it at exit.
static PROVIDER: OnceLock<Mutex<Option<SdkTracerProvider>>> = OnceLock::new();

/// Why traces cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TracesError(String);

impl TracesError {
    fn exporter(reason: impl std::fmt::Display) -> Self {
        TracesError(format!("the OTLP trace exporter cannot be built: {reason}"))
    }
}

/// The layer that turns `service_name`'s `tracing` spans into OpenTelemetry spans, exported
/// over OTLP when the environment names an endpoint; `None` when `OTEL_SDK_DISABLED` is `true`.
///
/// # Errors
/// [`TracesError`] when the exporter cannot be built (an endpoint that is not a URL), or when
/// `OTEL_SDK_DISABLED` is neither `true` nor `false`.
pub fn layer<S>(
    service_name: &'static str,
    lookup: Lookup<'_>,
) -> Result<Option<impl Layer<S> + Send + Sync + 'static>, TracesError>
where
    S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    if disabled(lookup)? {
        return Ok(None);
    }
    let exporting = lookup(ENDPOINT).is_some() || lookup(TRACES_ENDPOINT).is_some();
    let provider = provider(service_name, exporting)?;
    let tracer: SdkTracer = provider.tracer(service_name);
    let slot = PROVIDER.get_or_init(|| Mutex::new(None));
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(provider);
    // Spans that go nowhere need their ids and nothing else: without an exporter the layer
    // leaves out what only a trace viewer would show — the events logged in a span (each one
    // a copy of its fields), source locations, thread names, busy and idle times, activation
    // on every poll — which cost CPU on every span (BENCHMARKS.md measures the difference).
    let wanted = filter_fn(move |metadata| {
        metadata.level() <= &Level::INFO && (exporting || metadata.is_span())
    });
    Ok(Some(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(exporting)
            .with_threads(exporting)
            .with_tracked_inactivity(exporting)
            // Activation makes a span's context OpenTelemetry's current one on every poll, for
            // OpenTelemetry-native libraries; ours read it from the span (`outbox::trace`).
            .with_context_activation(exporting)
            .with_filter(wanted),
    ))
}

fn disabled(lookup: Lookup<'_>) -> Result<bool, TracesError> {
    match lookup(SDK_DISABLED) {
        None => Ok(false),
        Some(value) if value.is_empty() || value.eq_ignore_ascii_case("false") => Ok(false),
        Some(value) if value.eq_ignore_ascii_case("true") => Ok(true),
        Some(value) => Err(TracesError(format!(
            "{SDK_DISABLED} must be true or false, not {value:?}"
        ))),
    }
}

fn provider(service_name: &'static str, exporting: bool) -> Result<SdkTracerProvider, TracesError> {
    let resource = Resource::builder().with_service_name(service_name).build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
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
    .map_err(|_| TracesError::exporter("building it panicked"))?
    .map_err(TracesError::exporter)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otel_sdk_disabled_is_read_as_the_specification_says() {
        // The variable's value, and whether OpenTelemetry is off (or the error's fragment).
        let cases: &[(Option<&str>, Result<bool, &str>)] = &[
            (None, Ok(false)),
            (Some(""), Ok(false)),
            (Some("false"), Ok(false)),
            (Some("TRUE"), Ok(true)),
            (Some("true"), Ok(true)),
            (Some("yes"), Err("OTEL_SDK_DISABLED must be true or false")),
        ];
        for (value, expected) in cases {
            let lookup = |name: &str| {
                (name == SDK_DISABLED)
                    .then(|| value.map(str::to_owned))
                    .flatten()
            };
            match (disabled(&lookup), expected) {
                (Ok(actual), Ok(expected)) => assert_eq!(actual, *expected, "{value:?}"),
                (Err(error), Err(fragment)) => {
                    assert!(error.to_string().contains(fragment), "{value:?}: {error}")
                }
                (actual, expected) => panic!("{value:?}: got {actual:?}, want {expected:?}"),
            }
        }
    }
}
