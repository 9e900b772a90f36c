//! Pure stock rules, separate from the database.

use std::collections::HashMap;

use contracts::{Money, OrderCreated, PricedLine, StockReserved};

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

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::{CustomerId, OrderId, OrderLine, ProductId, Quantity};

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
            let lines: Vec<(String, i64, i64)> = reserved
                .items
                .iter()
                .map(|line| {
                    (
                        line.product_id.to_string(),
                        i64::from(line.quantity.get()),
                        line.unit_price.minor_units(),
                    )
                })
                .collect();
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
}
