//! The order saga as a `saga-runtime` definition: `saga_core::order`'s table, the system's
//! messages as its events, and the messages that carry out its effects.
//!
//! Everything the effects need lives in the instance's data ([`OrderData`]), so a re-send is
//! built from the stored instance alone: the lines (to ask for the reservation), the total the
//! reservation priced (to announce the completion), and the reason the saga gives with a
//! compensation or a cancellation.

use std::collections::BTreeMap;
use std::time::Duration;

use contracts::{AnyMessage, CustomerId, Envelope, Money, OrderId, OrderLine, PricedLine};
use outbox::{NewMessage, Outbound};
use saga_core::order::{ORDER_SAGA, OrderEffect, OrderEvent, OrderState};
use saga_core::{Deadline, Outcome, Table};
use saga_runtime::{Cause, Correlated, EffectContext, Rejection, Saga, Step};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::saga::{Heard, Learned, OrderFacts, effect_message, heard, reason};

/// What the order saga keeps of an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderData {
    /// Who placed it.
    pub customer_id: CustomerId,
    /// What was ordered, in the order given.
    pub lines: Vec<OrderLine>,
    /// The lines as inventory priced them when it reserved the stock; `None` until then.
    pub priced: Option<Vec<PricedLine>>,
    /// What payment charges (the reservation's total); `None` until known.
    pub total: Option<Money>,
    /// Why the order was cancelled, once it is.
    pub cancellation_reason: Option<String>,
    /// The reason the last decision gives, carried by its compensations.
    pub reason: Option<String>,
}

impl OrderData {
    /// A new order's data: nothing priced yet.
    pub fn placed(customer_id: CustomerId, lines: Vec<OrderLine>) -> OrderData {
        OrderData {
            customer_id,
            lines,
            priced: None,
            total: None,
            cancellation_reason: None,
            reason: None,
        }
    }
}

/// The order saga's definition.
pub struct OrderSaga {
    /// `ORDER_SAGA_TIMEOUT_SECS`: how long an order may wait for stock and payment.
    pub saga_timeout: Duration,
}

impl Saga for OrderSaga {
    type State = OrderState;
    type Event = OrderEvent;
    type Effect = OrderEffect;
    type Data = OrderData;
    type Message = Envelope<AnyMessage>;

    fn table(&self) -> &'static Table<'static, OrderState, OrderEvent, OrderEffect> {
        &ORDER_SAGA
    }

    fn event_of(&self, message: &Envelope<AnyMessage>) -> Option<Correlated<OrderEvent>> {
        let heard = heard(&message.payload)?;
        Some(Correlated {
            instance_id: message.correlation_id.as_uuid(),
            event: heard.event,
        })
    }

    fn record(&self, data: &mut OrderData, step: &Step<'_, Self>) -> Result<(), Rejection> {
        let order_id = OrderId::from(step.instance_id);
        let heard = match step.cause {
            Cause::Message(message) => heard(&message.payload).unwrap_or(Heard {
                event: step.event,
                reason: None,
                learned: None,
            }),
            Cause::Deadline => Heard {
                event: step.event,
                reason: None,
                learned: None,
            },
            Cause::Requested { by } => Heard {
                event: step.event,
                reason: Some(by.to_owned()),
                learned: None,
            },
        };
        // Prices are facts about the order, not steps of the saga: an event the saga moved
        // past (a reservation overtaken by its payment) still tells what was charged.
        if let Some(learned) = &heard.learned {
            record_prices(order_id, data, learned)?;
        }
        if matches!(step.outcome, Outcome::Duplicate { .. }) {
            return Ok(());
        }
        let why = reason(step.before, &heard, self.saga_timeout);
        if step.outcome.state() == OrderState::Cancelled && step.before != OrderState::Cancelled {
            data.cancellation_reason.get_or_insert_with(|| why.clone());
        }
        data.reason = Some(why);
        Ok(())
    }

    fn messages(
        &self,
        effect: OrderEffect,
        instance: &EffectContext<'_, Self>,
    ) -> Result<Vec<NewMessage>, Rejection> {
        let data = instance.data;
        let facts = OrderFacts {
            order_id: OrderId::from(instance.instance_id),
            customer_id: data.customer_id,
            total: data.total,
            lines: data.lines.clone(),
        };
        let why = data.reason.as_deref().unwrap_or("no reason given");
        let message = effect_message(effect, &facts, why).map_err(Rejection::new)?;
        let causation = instance.cause.map(contracts::MessageId::from);
        let envelope = Envelope::from_any(&message, causation).map_err(Rejection::new)?;
        Ok(vec![envelope.to_new_message().map_err(Rejection::new)?])
    }

    fn deadline_after(&self, _deadline: &Deadline<'static, OrderState, OrderEvent>) -> Duration {
        self.saga_timeout
    }
}

/// Records what a participant told about the prices. The first record wins: a redelivery
/// tells the same again, and what was charged never changes.
fn record_prices(
    order_id: OrderId,
    data: &mut OrderData,
    learned: &Learned,
) -> Result<(), Rejection> {
    match learned {
        Learned::Reservation {
            customer_id,
            items,
            total,
        } => {
            if *customer_id != data.customer_id {
                return Err(Rejection::new(format!(
                    "the reservation does not match order {order_id}: reserved for customer {customer_id}, placed by {}",
                    data.customer_id
                )));
            }
            let ordered: BTreeMap<&str, i64> = data
                .lines
                .iter()
                .map(|line| (line.product_id.as_str(), i64::from(line.quantity.get())))
                .collect();
            let reserved: BTreeMap<&str, i64> = items
                .iter()
                .map(|line| (line.product_id.as_str(), i64::from(line.quantity.get())))
                .collect();
            if ordered != reserved {
                return Err(Rejection::new(format!(
                    "the reservation does not match order {order_id}: reserved {reserved:?}, ordered {ordered:?}"
                )));
            }
            if data.priced.is_none() {
                data.priced = Some(items.clone());
            }
            record_total(order_id, data, *total);
        }
        Learned::Charge { amount } => record_total(order_id, data, *amount),
    }
    Ok(())
}

/// A charge or a reservation whose total is not the one recorded first means a participant
/// disagrees about the price: nothing to undo here, but operators must hear of it.
fn record_total(order_id: OrderId, data: &mut OrderData, told: Money) {
    let recorded = *data.total.get_or_insert(told);
    if recorded != told {
        warn!(%order_id, recorded = recorded.minor_units(), told = told.minor_units(), "participants disagree on the order's total");
    }
}
