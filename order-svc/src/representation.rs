//! What the order API shows: its JSON bodies (documented for OpenAPI) and how an
//! [`OrderRecord`] becomes one.

use chrono::{DateTime, Utc};
use saga_core::Label;
use saga_core::order::{ORDER_SAGA, OrderEffect};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::store::OrderRecord;

/// One line of an order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Item {
    /// The product.
    pub product_id: String,
    /// How many.
    pub quantity: i32,
    /// The catalog price of one unit when inventory reserved the stock, in minor units; `null`
    /// until then.
    #[schema(minimum = 0)]
    pub unit_price: Option<i64>,
}

/// One step of an order's saga: a row of the saga table that applied.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Step {
    /// Increasing along the timeline, but not by one: numbers may be skipped (the saga's start,
    /// and writes that only recorded facts such as a late price, take numbers too).
    pub seq: i64,
    /// State before.
    pub from: String,
    /// State after (equal to `from` for the compensation of a late event).
    pub to: String,
    /// The event.
    pub event: String,
    /// When it applied.
    pub at: DateTime<Utc>,
    /// What the saga asked for.
    pub effects: Vec<String>,
    /// The message that carried the event (absent for a step the service took itself: a
    /// deadline, a cancellation asked over the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Uuid>,
}

/// An effect the saga sent and still awaits the confirmation of; it is re-sent, with growing
/// pauses, until the confirmation arrives.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AwaitingEffect {
    /// The effect (`ReserveStock`, `CommitStock`, `ReleaseStock`, `RefundPayment`).
    pub effect: String,
    /// How many times it was sent, the first send included.
    #[schema(minimum = 1)]
    pub attempts: u32,
    /// When it was first sent.
    pub first_sent_at: DateTime<Utc>,
    /// When it was last sent.
    pub last_sent_at: DateTime<Utc>,
    /// When it is sent again unless confirmed first.
    pub next_attempt_at: DateTime<Utc>,
}

/// An order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Order {
    /// The order.
    pub id: Uuid,
    /// Who placed it.
    pub customer_id: Uuid,
    /// `Pending`, `Reserved`, `Paid`, `Completed` or `Cancelled`.
    pub status: String,
    /// What was ordered.
    pub items: Vec<Item>,
    /// What is charged: Σ quantity × unit price at the catalog prices of the reservation, in
    /// minor units; `null` until the stock is reserved (or the payment heard).
    #[schema(minimum = 0)]
    pub total: Option<i64>,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it is cancelled if still `Pending` or `Reserved`; `null` once it left them (no
    /// deadline runs any more).
    pub deadline_at: Option<DateTime<Utc>>,
    /// Why it was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    /// Every saga step, in order (left out of lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<Step>>,
    /// The effects still awaiting their confirmation, in the order first sent (left out of
    /// lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awaiting_confirmation: Option<Vec<AwaitingEffect>>,
    /// The W3C trace id of the trace the order was placed in: every service's work for it is
    /// in that trace (left out of lists, and when it was placed outside any trace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl Order {
    /// The order as shown; `detailed` adds the timeline and the effects awaiting confirmation.
    pub fn from_record(record: OrderRecord, detailed: bool) -> Order {
        let data = record.data;
        let unit_price = |product_id: &str| {
            data.priced.as_ref().and_then(|priced| {
                priced
                    .iter()
                    .find(|line| line.product_id.as_str() == product_id)
                    .map(|line| line.unit_price.minor_units())
            })
        };
        let items = data
            .lines
            .iter()
            .map(|line| Item {
                product_id: line.product_id.as_str().to_owned(),
                quantity: i32::try_from(line.quantity.get()).unwrap_or(i32::MAX),
                unit_price: unit_price(line.product_id.as_str()),
            })
            .collect();
        // The runtime's start row (no event) has no place in this shape: the order's creation
        // is `created_at`, and its first effect is the reservation request.
        let timeline = detailed.then(|| {
            record
                .timeline
                .iter()
                .filter_map(|entry| {
                    let (from, event) = (entry.from?, entry.event?);
                    Some(Step {
                        seq: entry.seq,
                        from: from.name().to_owned(),
                        to: entry.to.name().to_owned(),
                        event: event.name().to_owned(),
                        at: entry.at,
                        effects: names(&entry.effects),
                        message_id: entry.message_id,
                    })
                })
                .collect()
        });
        let awaiting_confirmation = detailed.then(|| {
            record
                .awaiting
                .iter()
                .map(|effect| AwaitingEffect {
                    effect: effect.effect.name().to_owned(),
                    attempts: effect.attempts,
                    first_sent_at: effect.first_sent_at,
                    last_sent_at: effect.last_sent_at,
                    next_attempt_at: effect.next_attempt_at,
                })
                .collect()
        });
        Order {
            id: record.id,
            customer_id: record.customer_id,
            status: record.state.name().to_owned(),
            items,
            total: data.total.map(|total| total.minor_units()),
            created_at: record.created_at,
            updated_at: record.updated_at,
            deadline_at: record.deadline_at,
            cancellation_reason: data.cancellation_reason,
            timeline,
            awaiting_confirmation,
            trace_id: record.trace_id,
        }
    }
}

fn names(effects: &[OrderEffect]) -> Vec<String> {
    effects
        .iter()
        .map(|effect| effect.name().to_owned())
        .collect()
}

/// A page of orders, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderPage {
    /// The orders, without timelines.
    pub items: Vec<Order>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Uuid>,
}

/// An order's state, as the API names it (the order saga's states).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Only its schema is used: the handler validates the text itself.
pub enum OrderStatus {
    /// Placed; stock not reserved yet.
    Pending,
    /// Stock reserved; payment not taken yet.
    Reserved,
    /// Paid; the reserved stock not committed yet.
    Paid,
    /// Stock committed: the order is done.
    Completed,
    /// Cancelled, with the compensations its progress required.
    Cancelled,
}

/// Filters and paging of `GET /orders`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListOrders {
    /// Only orders in this state.
    #[param(value_type = Option<OrderStatus>, inline)]
    pub status: Option<String>,
    /// Only this customer's orders (a customer may name only themselves, and sees only their
    /// own either way).
    pub customer_id: Option<Uuid>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
    /// Only orders placed at or after this moment (RFC 3339).
    pub created_after: Option<DateTime<Utc>>,
    /// Only orders placed before this moment (RFC 3339).
    pub created_before: Option<DateTime<Utc>>,
    /// Only orders still under way that have not moved for at least this many seconds: the
    /// stuck ones.
    #[param(minimum = 0, maximum = 31_536_000)]
    pub waiting_longer_than_secs: Option<u32>,
}

/// One row of the saga table.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SagaRow {
    /// In this state…
    pub from: String,
    /// …on this event…
    pub event: String,
    /// …go here…
    pub to: String,
    /// …and ask for these.
    pub effects: Vec<String>,
}

/// A `(state, event)` pair that changes nothing (a duplicate, or an event the saga moved past).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IgnoredPair {
    /// The state.
    pub state: String,
    /// The event.
    pub event: String,
}

/// The order saga exactly as this binary runs it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SagaDefinition {
    /// The table's name.
    pub name: String,
    /// Where every order starts.
    pub initial: String,
    /// What the start asks for.
    pub start_effects: Vec<String>,
    /// States never left.
    pub terminal: Vec<String>,
    /// The decisions.
    pub rows: Vec<SagaRow>,
    /// Pairs that change nothing; every other pair is invalid.
    pub ignored: Vec<IgnoredPair>,
    /// The table as a Mermaid `stateDiagram-v2`.
    pub mermaid: String,
    /// The table as Graphviz DOT.
    pub dot: String,
}

impl SagaDefinition {
    /// The order saga's table as this binary runs it.
    pub fn of_the_order_saga() -> SagaDefinition {
        SagaDefinition {
            name: ORDER_SAGA.name.to_owned(),
            initial: ORDER_SAGA.initial.name().to_owned(),
            start_effects: names(ORDER_SAGA.start_effects),
            terminal: ORDER_SAGA
                .terminal
                .iter()
                .map(|state| state.name().to_owned())
                .collect(),
            rows: ORDER_SAGA
                .rows
                .iter()
                .map(|row| SagaRow {
                    from: row.from.name().to_owned(),
                    event: row.event.name().to_owned(),
                    to: row.to.name().to_owned(),
                    effects: names(row.effects),
                })
                .collect(),
            ignored: ORDER_SAGA
                .ignored
                .iter()
                .map(|(state, event)| IgnoredPair {
                    state: state.name().to_owned(),
                    event: event.name().to_owned(),
                })
                .collect(),
            mermaid: ORDER_SAGA.to_mermaid(),
            dot: ORDER_SAGA.to_dot(),
        }
    }
}

/// The window of `GET /saga/activity`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityWindow {
    /// Count the steps of this many last seconds, 1–86400 (default 3600: the last hour).
    #[param(minimum = 1, maximum = 86_400)]
    pub window_secs: Option<u32>,
}

/// How many orders one state holds now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StateActivity {
    /// The state.
    pub state: String,
    /// Orders in it now.
    pub orders: u64,
}

/// How many steps took one edge of the table in the window.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EdgeActivity {
    /// The state before; absent for orders placed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The event; absent for orders placed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The state after.
    pub to: String,
    /// Steps in the window.
    pub steps: u64,
}

/// The order saga at work: orders by state now, steps by edge in the window.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SagaActivity {
    /// Where the window starts.
    pub since: DateTime<Utc>,
    /// Every state of the table, in its order, with its orders (zero included).
    pub states: Vec<StateActivity>,
    /// Every edge taken in the window, most taken first.
    pub edges: Vec<EdgeActivity>,
}

impl SagaActivity {
    /// The runtime's activity, named as the API names states and events.
    pub fn from_activity(
        activity: saga_runtime::Activity<
            saga_core::order::OrderState,
            saga_core::order::OrderEvent,
        >,
    ) -> SagaActivity {
        SagaActivity {
            since: activity.since,
            states: activity
                .in_state
                .into_iter()
                .map(|(state, orders)| StateActivity {
                    state: state.name().to_owned(),
                    orders,
                })
                .collect(),
            edges: activity
                .edges
                .into_iter()
                .map(|edge| EdgeActivity {
                    from: edge.from.map(|state| state.name().to_owned()),
                    event: edge.event.map(|event| event.name().to_owned()),
                    to: edge.to.name().to_owned(),
                    steps: edge.steps,
                })
                .collect(),
        }
    }
}
