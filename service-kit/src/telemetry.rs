//! Logging setup: `tracing` with an `EnvFilter`, text for people or JSON lines for machines.
//!
//! | variable     | values                              | default |
//! |--------------|-------------------------------------|---------|
//! | `RUST_LOG`   | an `EnvFilter` directive list       | `info`  |
//! | `LOG_FORMAT` | `text` or `json` (case-insensitive) | `text`  |
//!
//! Every JSON line carries `"service":"<name>"` as its first field, so lines from several
//! services in one log store can be told apart without relying on the collector's labels, and
//! `"trace_id"` and `"span_id"` of the span it was logged in ([`crate::traces`]: the same ids
//! the trace viewer shows), so a trace's log lines can be found in every service's log.
//!
//! The filter applies to the log lines only: spans at `info` and above are traced whatever
//! `RUST_LOG` says.

use std::sync::{Mutex, PoisonError};

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{Lookup, environment_lookup};

/// The filter used when `RUST_LOG` is unset or empty.
pub const DEFAULT_FILTER: &str = "info";

/// Logging cannot be set up from the environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelemetryError {
    /// `LOG_FORMAT` is neither `text` nor `json`.
    #[error(
        "environment variable LOG_FORMAT has an unknown value {value:?}: expected \"text\" or \"json\""
    )]
    UnknownLogFormat {
        /// The value found.
        value: String,
    },
    /// `RUST_LOG` is not a valid filter.
    #[error("environment variable RUST_LOG has an invalid filter {value:?}: {reason}")]
    InvalidFilter {
        /// The value found.
        value: String,
        /// The filter parser's reason.
        reason: String,
    },
    /// The trace exporter cannot be built from `OTEL_EXPORTER_OTLP_*`.
    #[error("{0}")]
    Traces(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

// Serialises `init` so that two racing first calls cannot both try to install a subscriber, and
// remembers that this process already has ours.
static INSTALLED: Mutex<bool> = Mutex::new(false);

/// Installs the global `tracing` subscriber for `service_name`, configured from `RUST_LOG` and
/// `LOG_FORMAT`.
///
/// Calling it again is a no-op that returns `Ok(())` (tests start several services in one
/// process), as is calling it when someone else (a test harness, say) already installed a global
/// subscriber: theirs stays. The environment is still validated on every call, so a bad
/// `LOG_FORMAT` is reported even then.
///
/// # Errors
/// [`TelemetryError`] naming the variable whose value is unusable.
pub fn init(service_name: &'static str) -> Result<(), TelemetryError> {
    init_from(&environment_lookup, service_name)
}

/// [`init`], reading the variables through `lookup`.
///
/// # Errors
/// [`TelemetryError`] naming the variable whose value is unusable.
pub fn init_from(lookup: Lookup<'_>, service_name: &'static str) -> Result<(), TelemetryError> {
    let (filter, format) = settings_from(lookup)?;
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    if *installed {
        return Ok(());
    }
    let traces = crate::traces::layer(service_name, lookup)
        .map_err(|error| TelemetryError::Traces(error.to_string()))?;
    let subscriber = build_subscriber(filter, format, service_name, std::io::stdout, traces);
    // An error here means another global subscriber is already in place; keeping it is the
    // documented behaviour, so the error carries nothing to act on.
    let _already_installed = subscriber.try_init();
    *installed = true;
    Ok(())
}

fn settings_from(lookup: Lookup<'_>) -> Result<(EnvFilter, LogFormat), TelemetryError> {
    let format = match lookup("LOG_FORMAT") {
        None => LogFormat::Text,
        Some(value) if value.is_empty() || value.eq_ignore_ascii_case("text") => LogFormat::Text,
        Some(value) if value.eq_ignore_ascii_case("json") => LogFormat::Json,
        Some(value) => return Err(TelemetryError::UnknownLogFormat { value }),
    };
    let directives = match lookup("RUST_LOG") {
        Some(value) if !value.is_empty() => value,
        Some(_) | None => DEFAULT_FILTER.to_owned(),
    };
    let filter = match EnvFilter::builder().parse(&directives) {
        Ok(filter) => filter,
        Err(error) => {
            return Err(TelemetryError::InvalidFilter {
                value: directives,
                reason: error.to_string(),
            });
        }
    };
    Ok((filter, format))
}

fn build_subscriber<W, T>(
    filter: EnvFilter,
    format: LogFormat,
    service_name: &'static str,
    make_writer: W,
    traces: Option<T>,
) -> Box<dyn Subscriber + Send + Sync + 'static>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
    T: Layer<Registry> + Send + Sync + 'static,
{
    let traced = tracing_subscriber::registry().with(traces);
    match format {
        LogFormat::Text => Box::new(
            traced.with(
                tracing_subscriber::fmt::layer()
                    .with_writer(make_writer)
                    .with_filter(filter),
            ),
        ),
        LogFormat::Json => {
            let json_format = tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false);
            Box::new(
                traced.with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_writer(make_writer)
                        .event_format(WithServiceName::new(service_name, json_format))
                        .with_filter(filter),
                ),
            )
        }
    }
}

/// Wraps the JSON event format to put `"service":"<name>"` first in every line, then the trace
/// and span ids of the span the event happened in.
///
/// tracing-subscriber has no notion of constant fields, and a root span would not reach events
/// of tasks spawned outside it; splicing the field into each formatted object does both.
struct WithServiceName<E> {
    service_field: String,
    inner: E,
}

impl<E> WithServiceName<E> {
    fn new(service_name: &str, inner: E) -> Self {
        // serde_json escapes the name; a `&str` always serialises.
        let quoted_name = match serde_json::to_string(service_name) {
            Ok(quoted) => quoted,
            Err(_) => String::from("\"\""),
        };
        Self {
            service_field: format!("\"service\":{quoted_name},"),
            inner,
        }
    }
}

impl<S, N, E> FormatEvent<S, N> for WithServiceName<E>
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'writer> FormatFields<'writer> + 'static,
    E: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(context, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => {
                writer.write_str("{")?;
                writer.write_str(&self.service_field)?;
                if let Some((trace_id, span_id)) = crate::traces::current_ids() {
                    // Hex digits only: nothing to escape.
                    write!(
                        writer,
                        "\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\","
                    )?;
                }
                writer.write_str(rest)
            }
            None => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct CapturedOutput(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for CapturedOutput {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn settings(variables: &[(&str, &str)]) -> Result<(EnvFilter, LogFormat), TelemetryError> {
        let variables: HashMap<String, String> = variables
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        settings_from(&|name: &str| variables.get(name).cloned())
    }

    /// Variables, and the format they select or the variable the error names.
    type Case = (
        &'static [(&'static str, &'static str)],
        Result<LogFormat, &'static str>,
    );

    #[test]
    fn log_format_is_read_from_the_environment() {
        let cases: &[Case] = &[
            (&[], Ok(LogFormat::Text)),
            (&[("LOG_FORMAT", "")], Ok(LogFormat::Text)),
            (&[("LOG_FORMAT", "text")], Ok(LogFormat::Text)),
            (&[("LOG_FORMAT", "json")], Ok(LogFormat::Json)),
            (&[("LOG_FORMAT", "JSON")], Ok(LogFormat::Json)),
            (&[("LOG_FORMAT", "yaml")], Err("LOG_FORMAT")),
            (&[("RUST_LOG", "info,foo=notalevel")], Err("RUST_LOG")),
        ];
        for (variables, expected) in cases {
            let actual = settings(variables).map(|(_, format)| format);
            match (actual, expected) {
                (Ok(actual), Ok(expected)) => assert_eq!(actual, *expected, "{variables:?}"),
                (Err(error), Err(variable)) => {
                    assert!(
                        error.to_string().contains(variable),
                        "{variables:?}: {error}"
                    )
                }
                (actual, expected) => panic!("{variables:?}: got {actual:?}, want {expected:?}"),
            }
        }
    }

    #[test]
    fn every_json_line_names_the_service() {
        let output = CapturedOutput::default();
        let writer = output.clone();
        let (filter, format) = settings(&[("LOG_FORMAT", "json"), ("RUST_LOG", "debug")]).unwrap();
        let subscriber = build_subscriber(
            filter,
            format,
            "order-svc",
            move || writer.clone(),
            None::<tracing_subscriber::layer::Identity>,
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(order_id = "o-1", "order accepted");
            let span = tracing::info_span!("http_request", route = "/orders");
            let _entered = span.enter();
            tracing::debug!("inside a span");
        });
        let text = String::from_utf8(output.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        for line in &lines {
            assert_eq!(line["service"], "order-svc", "{line}");
        }
        assert_eq!(lines[0]["order_id"], "o-1");
        assert_eq!(lines[0]["message"], "order accepted");
        assert_eq!(lines[1]["span"]["route"], "/orders");
    }

    #[test]
    fn init_twice_is_a_no_op() {
        let json = |name: &str| (name == "LOG_FORMAT").then(|| "json".to_owned());
        assert_eq!(init_from(&json, "test-svc"), Ok(()));
        assert_eq!(init_from(&json, "test-svc"), Ok(()));
        let bad = |name: &str| (name == "LOG_FORMAT").then(|| "xml".to_owned());
        assert!(matches!(
            init_from(&bad, "test-svc"),
            Err(TelemetryError::UnknownLogFormat { .. })
        ));
    }
}
