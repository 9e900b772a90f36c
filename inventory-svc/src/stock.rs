//! Pure stock rules, separate from the database.

use std::collections::HashMap;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
