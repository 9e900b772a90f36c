//! Pure stock rules, separate from the database.

use std::collections::HashMap;

use contracts::{
    InvalidValue, Money, OrderCreated, PricedLine, ProductId, Quantity, StockReserved,
};

/// Where a reservation stands. Stored as its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReservationStatus {
    /// Units are held for the order.
    Held,
    /// The units were sold.
    Committed,
    /// The units went back to stock, or the saga released an order inventory never held
    /// (a tombstone: a reservation request arriving later holds nothing).
    Released,
    /// The order could not be held.
    Failed,
}

impl ReservationStatus {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            ReservationStatus::Held => "Held",
            ReservationStatus::Committed => "Committed",
            ReservationStatus::Released => "Released",
            ReservationStatus::Failed => "Failed",
        }
    }

    /// The status named `name`.
    pub fn from_name(name: &str) -> Option<ReservationStatus> {
        [Self::Held, Self::Committed, Self::Released, Self::Failed]
            .into_iter()
            .find(|status| status.name() == name)
    }
}

/// Why an order's lines cannot all be held, one reason per failing line, in line order:
/// `unknown product X`, `insufficient stock for X: 3 requested, 1 available`.
///
/// `available` maps the products that exist to their free units.
pub fn shortfalls(lines: &[(String, i64)], available: &HashMap<String, i64>) -> Vec<String> {
    lines
        .iter()
        .filter_map(|(product_id, requested)| match available.get(product_id) {
            None => Some(format!("unknown product {product_id}")),
            Some(free) if free < requested => Some(format!(
                "insufficient stock for {product_id}: {requested} requested, {free} available"
            )),
            Some(_) => None,
        })
        .collect()
}

/// One product as a reservation sees it, read under the product's row lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatalogEntry {
    /// Units free to reserve.
    pub available: i64,
    /// The catalog price of one unit.
    pub price: Money,
}

/// Inventory's decision for `order` against `catalog` (the products that exist): the
/// reservation to publish, every line priced at its product's catalog price, or why nothing can
/// be held (the [`shortfalls`], or a total too large to represent).
pub fn decide(
    order: &OrderCreated,
    catalog: &HashMap<String, CatalogEntry>,
) -> Result<StockReserved, String> {
    let lines: Vec<(String, i64)> = order
        .items
        .iter()
        .map(|line| {
            (
                line.product_id.as_str().to_owned(),
                i64::from(line.quantity.get()),
            )
        })
        .collect();
    let available = catalog
        .iter()
        .map(|(product_id, entry)| (product_id.clone(), entry.available))
        .collect();
    let missing = shortfalls(&lines, &available);
    if !missing.is_empty() {
        return Err(missing.join("; "));
    }
    let mut priced = Vec::with_capacity(order.items.len());
    for line in &order.items {
        let Some(entry) = catalog.get(line.product_id.as_str()) else {
            // `shortfalls` names every unknown product; this is only for the compiler's sake.
            return Err(format!("unknown product {}", line.product_id));
        };
        priced.push(PricedLine {
            product_id: line.product_id.clone(),
            quantity: line.quantity,
            unit_price: entry.price,
        });
    }
    StockReserved::new(order.order_id, order.customer_id, priced).map_err(|error| error.to_string())
}

/// Inventory's answer to a reservation request: the stock is held, priced, or why it is not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Every line is held: publish this `StockReserved`.
    Reserved(StockReserved),
    /// Nothing is held: publish `StockFailed` with this reason.
    Failed(String),
}

/// The reason a repeated request for a failed reservation is answered with when the failure
/// kept none (no code path stores a failure without its reason; this only keeps a hand-edited
/// or corrupt row answerable).
pub const FAILED_WITHOUT_REASON: &str = "the stock could not be reserved";

/// Why a request for an order the saga already cancelled holds nothing: `held` says whether
/// stock was held (and then released) or the release came first and left a tombstone;
/// `release_reason` is what the `ReleaseStock` said.
pub fn cancelled_reason(held: bool, release_reason: Option<&str>) -> String {
    let sentence = if held {
        "the order was cancelled after its stock was reserved; the stock was released"
    } else {
        "the order was cancelled before its stock was reserved"
    };
    match release_reason.map(str::trim) {
        None | Some("") => sentence.to_owned(),
        Some(reason) => format!("{sentence}: {reason}"),
    }
}

/// The answer to a reservation request for `order` that inventory decided before (a copy the
/// saga re-sent because it never heard the first answer): the same decision, never a new one.
///
/// `kept` are the reservation's lines as (product, quantity, unit price), in any order; they are
/// answered in the order's line order, as the first answer was, at the prices they were held at.
/// Held and committed reservations answer `StockReserved`; a failed one its recorded `reason`;
/// a released one (`reason` is then the release's) says the order was cancelled, before or
/// after its stock was held. `Err` names a stored reservation that cannot be published (a
/// corrupt row).
pub fn answer_again(
    order: &OrderCreated,
    status: ReservationStatus,
    reason: Option<&str>,
    kept: &[(String, i64, i64)],
) -> Result<Answer, String> {
    match status {
        ReservationStatus::Held | ReservationStatus::Committed => {
            reserved_again(order, kept).map(Answer::Reserved)
        }
        ReservationStatus::Failed => Ok(Answer::Failed(
            reason.unwrap_or(FAILED_WITHOUT_REASON).to_owned(),
        )),
        ReservationStatus::Released => {
            Ok(Answer::Failed(cancelled_reason(!kept.is_empty(), reason)))
        }
    }
}

/// The `StockReserved` a reservation holding `kept` was published as.
fn reserved_again(
    order: &OrderCreated,
    kept: &[(String, i64, i64)],
) -> Result<StockReserved, String> {
    let position = |product_id: &str| {
        order
            .items
            .iter()
            .position(|line| line.product_id.as_str() == product_id)
            // A kept product the order does not name cannot happen; it goes last, not lost.
            .unwrap_or(usize::MAX)
    };
    let mut sorted: Vec<&(String, i64, i64)> = kept.iter().collect();
    sorted.sort_by_key(|(product_id, _, _)| position(product_id));
    let mut priced = Vec::with_capacity(sorted.len());
    for (product_id, quantity, unit_price) in sorted {
        let corrupt = |error: InvalidValue| format!("reservation line {product_id}: {error}");
        priced.push(PricedLine {
            product_id: ProductId::new(product_id.as_str()).map_err(corrupt)?,
            quantity: Quantity::new(*quantity).map_err(corrupt)?,
            unit_price: Money::new(*unit_price).map_err(corrupt)?,
        });
    }
    StockReserved::new(order.order_id, order.customer_id, priced).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::{CustomerId, OrderId, OrderLine};

    /// A reservation's lines as `(product, quantity, unit price)`.
    fn rows_of(reserved: &StockReserved) -> Vec<(String, i64, i64)> {
        reserved
            .items
            .iter()
            .map(|line| {
                (
                    line.product_id.to_string(),
                    i64::from(line.quantity.get()),
                    line.unit_price.minor_units(),
                )
            })
            .collect()
    }

    fn check(lines: &[(&str, i64)], stock: &[(&str, i64)], expected: &[&str]) {
        let lines: Vec<(String, i64)> =
            lines.iter().map(|(id, q)| ((*id).to_owned(), *q)).collect();
        let stock: HashMap<String, i64> =
            stock.iter().map(|(id, q)| ((*id).to_owned(), *q)).collect();
        assert_eq!(
            shortfalls(&lines, &stock),
            expected,
            "{lines:?} against {stock:?}"
        );
    }

    #[test]
    fn shortfalls_name_every_failing_line() {
        check(&[("a", 2)], &[("a", 2)], &[]);
        check(
            &[("a", 3)],
            &[("a", 2)],
            &["insufficient stock for a: 3 requested, 2 available"],
        );
        check(&[("x", 1)], &[], &["unknown product x"]);
        check(
            &[("a", 1), ("x", 1), ("b", 9)],
            &[("a", 5), ("b", 0)],
            &[
                "unknown product x",
                "insufficient stock for b: 9 requested, 0 available",
            ],
        );
    }

    #[test]
    fn statuses_read_back_from_their_names() {
        for status in [
            ReservationStatus::Held,
            ReservationStatus::Committed,
            ReservationStatus::Released,
            ReservationStatus::Failed,
        ] {
            assert_eq!(ReservationStatus::from_name(status.name()), Some(status));
        }
        assert_eq!(ReservationStatus::from_name("held"), None);
    }

    /// What a decision should come to: the published lines as (product, quantity, unit price)
    /// and the total, or the reason nothing is held.
    type Decision<'a> = Result<(&'a [(&'a str, i64, i64)], i64), &'a str>;

    /// Decides an order of `lines` (product, quantity) against `catalog` (product, available,
    /// price): the published lines as (product, quantity, unit price) and the total, or the
    /// reason.
    fn check_decision(lines: &[(&str, i64)], catalog: &[(&str, i64, i64)], expected: Decision<'_>) {
        let items = lines
            .iter()
            .map(|(product, quantity)| OrderLine {
                product_id: ProductId::new(*product).unwrap(),
                quantity: Quantity::new(*quantity).unwrap(),
            })
            .collect();
        let order = OrderCreated::new(OrderId::generate(), CustomerId::generate(), items).unwrap();
        let catalog: HashMap<String, CatalogEntry> = catalog
            .iter()
            .map(|(product, available, price)| {
                let entry = CatalogEntry {
                    available: *available,
                    price: Money::new(*price).unwrap(),
                };
                ((*product).to_owned(), entry)
            })
            .collect();
        let decided = decide(&order, &catalog).map(|reserved| {
            assert_eq!(
                (reserved.order_id, reserved.customer_id),
                (order.order_id, order.customer_id)
            );
            let lines = rows_of(&reserved);
            (lines, reserved.total.minor_units())
        });
        let expected = expected
            .map(|(lines, total)| {
                let lines: Vec<(String, i64, i64)> = lines
                    .iter()
                    .map(|(product, quantity, price)| ((*product).to_owned(), *quantity, *price))
                    .collect();
                (lines, total)
            })
            .map_err(str::to_owned);
        assert_eq!(decided, expected, "{lines:?} against {catalog:?}");
    }

    #[test]
    fn decisions_price_every_line_from_the_catalog_or_say_why_not() {
        // Lines keep the order's order, each at its own product's price.
        check_decision(
            &[("b", 2), ("a", 3)],
            &[("a", 5, 250), ("b", 2, 1000)],
            Ok((&[("b", 2, 1000), ("a", 3, 250)], 2750)),
        );
        // A free product is allowed: the operator set its price to 0.
        check_decision(&[("a", 1)], &[("a", 1, 0)], Ok((&[("a", 1, 0)], 0)));
        check_decision(
            &[("a", 6), ("x", 1)],
            &[("a", 5, 250)],
            Err("insufficient stock for a: 6 requested, 5 available; unknown product x"),
        );
        // A price × quantity beyond the money type holds nothing rather than wrapping.
        check_decision(
            &[("a", 2)],
            &[("a", 2, i64::MAX)],
            Err("the order total overflows"),
        );
    }

    /// What a repeat should be answered: the published lines as (product, quantity, unit price)
    /// and the total, or the reason nothing is held.
    type Again<'a> = Result<(&'a [(&'a str, i64, i64)], i64), &'a str>;

    /// A stored reservation: its status, reason and kept lines (product, quantity, unit price).
    type Stored<'a> = (
        ReservationStatus,
        Option<&'a str>,
        &'a [(&'a str, i64, i64)],
    );

    /// Answers again an order of `lines` (product, quantity) whose reservation has `status`,
    /// `reason` and the `kept` lines (product, quantity, unit price).
    fn check_answer_again(
        lines: &[(&str, i64)],
        (status, reason, kept): Stored<'_>,
        expected: Again<'_>,
    ) {
        let items = lines
            .iter()
            .map(|(product, quantity)| OrderLine {
                product_id: ProductId::new(*product).unwrap(),
                quantity: Quantity::new(*quantity).unwrap(),
            })
            .collect();
        let order = OrderCreated::new(OrderId::generate(), CustomerId::generate(), items).unwrap();
        let kept: Vec<(String, i64, i64)> = kept
            .iter()
            .map(|(product, quantity, price)| ((*product).to_owned(), *quantity, *price))
            .collect();
        let answered = match answer_again(&order, status, reason, &kept).unwrap() {
            Answer::Reserved(reserved) => {
                assert_eq!(
                    (reserved.order_id, reserved.customer_id),
                    (order.order_id, order.customer_id)
                );
                let published = rows_of(&reserved);
                Ok((published, reserved.total.minor_units()))
            }
            Answer::Failed(reason) => Err(reason),
        };
        let expected = expected
            .map(|(lines, total)| {
                let lines: Vec<(String, i64, i64)> = lines
                    .iter()
                    .map(|(product, quantity, price)| ((*product).to_owned(), *quantity, *price))
                    .collect();
                (lines, total)
            })
            .map_err(str::to_owned);
        assert_eq!(answered, expected, "{status:?} {reason:?} {kept:?}");
    }

    #[test]
    fn a_decided_reservation_is_answered_again_with_the_same_decision() {
        use ReservationStatus::{Committed, Failed, Held, Released};
        // Kept lines come back in the order's line order, at the prices they were held at.
        let held = &[("a", 3, 250), ("b", 2, 1000)];
        check_answer_again(
            &[("b", 2), ("a", 3)],
            (Held, None, held),
            Ok((&[("b", 2, 1000), ("a", 3, 250)], 2750)),
        );
        check_answer_again(
            &[("b", 2), ("a", 3)],
            (Committed, None, held),
            Ok((&[("b", 2, 1000), ("a", 3, 250)], 2750)),
        );
        check_answer_again(
            &[("a", 9)],
            (
                Failed,
                Some("insufficient stock for a: 9 requested, 1 available"),
                &[],
            ),
            Err("insufficient stock for a: 9 requested, 1 available"),
        );
        check_answer_again(&[("a", 9)], (Failed, None, &[]), Err(FAILED_WITHOUT_REASON));
        // A tombstone: the release came first.
        check_answer_again(
            &[("a", 1)],
            (Released, Some("deadline passed"), &[]),
            Err("the order was cancelled before its stock was reserved: deadline passed"),
        );
        check_answer_again(
            &[("a", 1)],
            (Released, Some("payment failed"), &[("a", 1, 250)]),
            Err(
                "the order was cancelled after its stock was reserved; the stock was released: \
                 payment failed",
            ),
        );
        check_answer_again(
            &[("a", 1)],
            (Released, Some(" "), &[]),
            Err("the order was cancelled before its stock was reserved"),
        );
    }

    #[test]
    fn a_corrupt_kept_line_is_an_error_not_an_answer() {
        let order = OrderCreated::new(
            OrderId::generate(),
            CustomerId::generate(),
            vec![OrderLine {
                product_id: ProductId::new("a").unwrap(),
                quantity: Quantity::new(1).unwrap(),
            }],
        )
        .unwrap();
        for kept in [("a".to_owned(), 1, -5), ("a".to_owned(), 0, 5)] {
            let answered = answer_again(
                &order,
                ReservationStatus::Held,
                None,
                std::slice::from_ref(&kept),
            );
            assert!(answered.is_err(), "{kept:?}: {answered:?}");
        }
    }
}
