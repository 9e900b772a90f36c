//! W3C trace context across the broker, so that one business flow is one trace whatever
//! services and queues it crosses.
//!
//! - **Captured at enqueue.** [`crate::enqueue_all`] writes the current span's context into a
//!   row's headers (`traceparent`, `tracestate`) unless the message carries one already: a
//!   message the relay publishes seconds later still belongs to the request or the handling
//!   that caused it.
//! - **Carried as AMQP headers.** The relay publishes each row inside a `send` span, a child of
//!   the captured context, and sends that span's context on.
//! - **Restored by the consumer.** The consumer runner reads the headers of each delivery and
//!   makes its `receive` and `process` spans children of the message's context; the handler
//!   runs inside `process`, so whatever it enqueues continues the same trace.
//!
//! Spans follow OpenTelemetry's messaging conventions for RabbitMQ (`messaging.system`,
//! `messaging.destination.name`, `messaging.operation.type`,
//! `messaging.rabbitmq.destination.routing_key`, `messaging.message.id`,
//! `messaging.message.conversation_id` — the correlation id). Without an OpenTelemetry layer in
//! the process's `tracing` subscriber nothing is recorded and no header is written; nothing
//! here needs a global propagator either: the W3C format is read and written by hand.
//!
//! ```
//! use outbox::trace::TraceContext;
//!
//! let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
//! let context = TraceContext::parse(Some(header), None).expect("a valid traceparent");
//! assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert_eq!(context.traceparent(), header);
//! assert!(TraceContext::parse(Some("00-not-a-trace"), None).is_none());
//! ```

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use serde_json::{Map, Value};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header carrying the trace id, the parent span id and the flags.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header carrying vendor-specific trace state.
pub const TRACESTATE: &str = "tracestate";

/// A valid W3C trace context: where in which trace a message (or an instance) was caused.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceContext {
    span_context: SpanContext,
}

impl TraceContext {
    /// The context of `span`, if it is recorded by an OpenTelemetry layer.
    pub fn of(span: &tracing::Span) -> Option<TraceContext> {
        let context = span.context();
        let span_context = context.span().span_context().clone();
        span_context
            .is_valid()
            .then_some(TraceContext { span_context })
    }

    /// The context of the current span, if any.
    pub fn current() -> Option<TraceContext> {
        TraceContext::of(&tracing::Span::current())
    }

    /// Reads `traceparent` (and `tracestate`); `None` unless `traceparent` is valid.
    pub fn parse(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<TraceContext> {
        let mut parts = traceparent?.trim().split('-');
        let (version, trace_id, span_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        // Version 00 has exactly four fields; a later version may append more.
        if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let well_formed = |text: &str, length: usize| {
            text.len() == length
                && text
                    .bytes()
                    .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
        };
        if !well_formed(trace_id, 32) || !well_formed(span_id, 16) || !well_formed(flags, 2) {
            return None;
        }
        let trace_id = TraceId::from_hex(trace_id).ok()?;
        let span_id = SpanId::from_hex(span_id).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        let state = tracestate
            .and_then(|state| state.parse::<TraceState>().ok())
            .unwrap_or_default();
        let span_context = SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::new(flags & TraceFlags::SAMPLED.to_u8()),
            true,
            state,
        );
        span_context
            .is_valid()
            .then_some(TraceContext { span_context })
    }

    /// Reads the context a message's headers carry (as written by [`TraceContext::write`]).
    pub fn from_headers(headers: &Map<String, Value>) -> Option<TraceContext> {
        TraceContext::parse(
            headers.get(TRACEPARENT).and_then(Value::as_str),
            headers.get(TRACESTATE).and_then(Value::as_str),
        )
    }

    /// The trace id, 32 lower-case hex digits.
    pub fn trace_id(&self) -> String {
        self.span_context.trace_id().to_string()
    }

    /// The `traceparent` header's value.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.span_context.trace_id(),
            self.span_context.span_id(),
            self.span_context.trace_flags().to_u8()
        )
    }

    /// The `tracestate` header's value, if there is any state.
    pub fn tracestate(&self) -> Option<String> {
        let state = self.span_context.trace_state().header();
        (!state.is_empty()).then_some(state)
    }

    /// Writes `traceparent` (and `tracestate`) into `headers`, replacing what was there.
    pub fn write(&self, headers: &mut Map<String, Value>) {
        headers.insert(TRACEPARENT.to_owned(), Value::String(self.traceparent()));
        match self.tracestate() {
            Some(state) => headers.insert(TRACESTATE.to_owned(), Value::String(state)),
            None => headers.remove(TRACESTATE),
        };
    }

    /// Makes `span` a child of this context (a span that is not recorded stays as it is).
    pub fn adopt(&self, span: &tracing::Span) {
        let parent =
            opentelemetry::Context::new().with_remote_span_context(self.span_context.clone());
        // Fails only for a span already started elsewhere; the span then keeps its parent.
        let _ = span.set_parent(parent);
    }
}

/// Makes `span` a child of `context`, when there is one.
pub fn adopt(span: &tracing::Span, context: Option<&TraceContext>) {
    if let Some(context) = context {
        context.adopt(span);
    }
}

/// Writes the current span's context into `headers` unless they carry a valid one already.
pub(crate) fn capture_into(headers: &mut Map<String, Value>) {
    if TraceContext::from_headers(headers).is_some() {
        return;
    }
    if let Some(current) = TraceContext::current() {
        current.write(headers);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_read_only_when_well_formed() {
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let span = "00f067aa0ba902b7";
        let cases: Vec<(String, bool)> = vec![
            (format!("00-{trace}-{span}-01"), true),
            (format!("00-{trace}-{span}-00"), true),
            // A later version may add fields; version 00 may not.
            (format!("01-{trace}-{span}-01-extra"), true),
            (format!("00-{trace}-{span}-01-extra"), false),
            (format!("ff-{trace}-{span}-01"), false),
            (format!("00-{}-{span}-01", "0".repeat(32)), false),
            (format!("00-{trace}-{}-01", "0".repeat(16)), false),
            (format!("00-{}-{span}-01", trace.to_uppercase()), false),
            (format!("00-{trace}-{span}"), false),
            ("".to_owned(), false),
            ("garbage".to_owned(), false),
        ];
        for (header, valid) in cases {
            let parsed = TraceContext::parse(Some(&header), None);
            assert_eq!(parsed.is_some(), valid, "{header:?}");
            if let (Some(parsed), true) = (parsed, header.starts_with("00-")) {
                assert_eq!(parsed.traceparent(), header, "written back as read");
            }
        }
    }

    #[test]
    fn headers_carry_the_context_and_its_state() {
        let context = TraceContext::parse(
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("vendor=value"),
        )
        .unwrap();
        let mut headers = Map::new();
        context.write(&mut headers);
        assert_eq!(TraceContext::from_headers(&headers), Some(context));
        assert_eq!(headers[TRACESTATE], "vendor=value");
    }

    #[test]
    fn without_an_opentelemetry_layer_nothing_is_captured() {
        let mut headers = Map::new();
        let span = tracing::info_span!("request");
        span.in_scope(|| capture_into(&mut headers));
        assert!(headers.is_empty());
    }
}
