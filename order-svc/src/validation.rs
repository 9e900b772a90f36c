//! The rules a new order must satisfy. Pure: no I/O, every violation reported at once.

use std::collections::HashSet;

use contracts::{CustomerId, Money, OrderLine, ProductId, Quantity, order_total};
use serde::Deserialize;
use utoipa::ToSchema;

/// The most lines an order may have.
pub const MAX_LINES: usize = 100;
/// The largest quantity of one line.
pub const MAX_QUANTITY: i64 = 10_000;
/// The largest unit price, in minor units.
pub const MAX_UNIT_PRICE: i64 = 1_000_000_000;

/// The body of `POST /orders`, as sent: types are checked by deserialisation (a wrong type is a
/// 400), values by [`validate`] (a violation is a 422).
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct PlaceOrder {
    /// The customer (a UUID).
    #[schema(format = Uuid)]
    pub customer_id: String,
    /// 1 to 100 lines, each product at most once.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<PlaceOrderLine>,
}

/// One line of `POST /orders`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct PlaceOrderLine {
    /// 1–64 characters of `[A-Za-z0-9_-]`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub product_id: String,
    /// 1 to 10,000.
    #[serde(deserialize_with = "service_kit::extract::integer")]
    #[schema(minimum = 1, maximum = 10_000)]
    pub quantity: i64,
    /// 0 to 10^9 minor units.
    #[serde(deserialize_with = "service_kit::extract::integer")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub unit_price: i64,
}

/// A validated order, ready to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidOrder {
    /// The customer.
    pub customer_id: CustomerId,
    /// The lines, in request order.
    pub lines: Vec<OrderLine>,
    /// Σ quantity × unit price.
    pub total: Money,
}

/// One violated rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The JSON path of the field (`items[2].quantity`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn violation(field: impl Into<String>, message: impl Into<String>) -> Violation {
    Violation {
        field: field.into(),
        message: message.into(),
    }
}

/// Checks every rule and returns the order, or every violation.
pub fn validate(request: &PlaceOrder) -> Result<ValidOrder, Vec<Violation>> {
    let mut violations = Vec::new();
    let customer_id = match request.customer_id.parse::<CustomerId>() {
        Ok(id) => Some(id),
        Err(_) => {
            violations.push(violation("customer_id", "must be a UUID"));
            None
        }
    };
    if request.items.is_empty() || request.items.len() > MAX_LINES {
        violations.push(violation(
            "items",
            format!(
                "must have 1 to {MAX_LINES} lines, has {}",
                request.items.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    let mut lines = Vec::with_capacity(request.items.len());
    for (index, line) in request.items.iter().enumerate() {
        let product_id = match ProductId::new(line.product_id.clone()) {
            Ok(id) => Some(id),
            Err(_) => {
                violations.push(violation(
                    format!("items[{index}].product_id"),
                    "must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'",
                ));
                None
            }
        };
        if product_id.is_some() && !seen.insert(line.product_id.as_str()) {
            violations.push(violation(
                format!("items[{index}].product_id"),
                format!("product {} appears on more than one line", line.product_id),
            ));
        }
        let quantity = match Quantity::new(line.quantity) {
            Ok(quantity) if line.quantity <= MAX_QUANTITY => Some(quantity),
            _ => {
                violations.push(violation(
                    format!("items[{index}].quantity"),
                    format!(
                        "must be between 1 and {MAX_QUANTITY}, got {}",
                        line.quantity
                    ),
                ));
                None
            }
        };
        let unit_price = match Money::new(line.unit_price) {
            Ok(price) if line.unit_price <= MAX_UNIT_PRICE => Some(price),
            _ => {
                violations.push(violation(
                    format!("items[{index}].unit_price"),
                    format!(
                        "must be between 0 and {MAX_UNIT_PRICE}, got {}",
                        line.unit_price
                    ),
                ));
                None
            }
        };
        if let (Some(product_id), Some(quantity), Some(unit_price)) =
            (product_id, quantity, unit_price)
        {
            lines.push(OrderLine {
                product_id,
                quantity,
                unit_price,
            });
        }
    }
    let (Some(customer_id), true) = (customer_id, violations.is_empty()) else {
        return Err(violations);
    };
    // With the limits above a total cannot overflow; the check stays so that changing a limit
    // cannot silently wrap money.
    match order_total(&lines) {
        Ok(total) => Ok(ValidOrder {
            customer_id,
            lines,
            total,
        }),
        Err(error) => Err(vec![violation("items", error.to_string())]),
    }
}

/// The canonical form of an order request, compared when an `Idempotency-Key` is reused.
pub fn canonical(order: &ValidOrder) -> String {
    let lines: Vec<serde_json::Value> = order
        .lines
        .iter()
        .map(|line| {
            serde_json::json!({
                "product_id": line.product_id.as_str(),
                "quantity": line.quantity.get(),
                "unit_price": line.unit_price.minor_units(),
            })
        })
        .collect();
    serde_json::json!({ "customer_id": order.customer_id.to_string(), "items": lines }).to_string()
}

/// The `Idempotency-Key` rule as a regular expression, for the OpenAPI document: 1 to 255
/// printable ASCII characters, not starting or ending with a space (HTTP drops such spaces, so
/// the service could not tell `" k"` from `"k"`).
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]([ -~]{0,253}[!-~])?$";

/// Checks an `Idempotency-Key` header value against [`IDEMPOTENCY_KEY_PATTERN`].
pub fn idempotency_key(value: &str) -> Result<&str, Violation> {
    let length = value.chars().count();
    if !(1..=255).contains(&length) {
        return Err(violation(
            "Idempotency-Key",
            format!("must be 1 to 255 characters, has {length}"),
        ));
    }
    let printable = |character: char| (' '..='~').contains(&character);
    if !value.chars().all(printable) || value.starts_with(' ') || value.ends_with(' ') {
        return Err(violation(
            "Idempotency-Key",
            "must be printable ASCII, not starting or ending with a space",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CUSTOMER: &str = "0199c3e1-0000-7000-8000-0000000000c1";

    fn line(product_id: &str, quantity: i64, unit_price: i64) -> PlaceOrderLine {
        PlaceOrderLine {
            product_id: product_id.to_owned(),
            quantity,
            unit_price,
        }
    }

    fn request(customer_id: &str, items: Vec<PlaceOrderLine>) -> PlaceOrder {
        PlaceOrder {
            customer_id: customer_id.to_owned(),
            items,
        }
    }

    /// `expected`: the total when valid, or the violated fields.
    fn check(request: PlaceOrder, expected: Result<i64, &[&str]>) {
        let outcome = validate(&request);
        match (outcome, expected) {
            (Ok(order), Ok(total)) => assert_eq!(order.total.minor_units(), total, "{request:?}"),
            (Err(violations), Err(fields)) => {
                let found: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
                assert_eq!(found, fields, "{request:?}");
            }
            (outcome, expected) => panic!("{request:?}: got {outcome:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn orders_are_validated_field_by_field() {
        check(
            request(CUSTOMER, vec![line("a", 2, 150), line("b", 1, 0)]),
            Ok(300),
        );
        check(
            request(CUSTOMER, vec![line("a", 10_000, 1_000_000_000)]),
            Ok(10_000_000_000_000),
        );
        check(
            request("nope", vec![line("a", 1, 1)]),
            Err(&["customer_id"]),
        );
        check(request(CUSTOMER, vec![]), Err(&["items"]));
        check(
            request(
                CUSTOMER,
                (0..101).map(|i| line(&format!("p{i}"), 1, 1)).collect(),
            ),
            Err(&["items"]),
        );
        check(
            request(CUSTOMER, vec![line("", 1, 1)]),
            Err(&["items[0].product_id"]),
        );
        check(
            request(CUSTOMER, vec![line(&"x".repeat(65), 1, 1)]),
            Err(&["items[0].product_id"]),
        );
        check(
            request(CUSTOMER, vec![line("a b", 1, 1)]),
            Err(&["items[0].product_id"]),
        );
        check(
            request(CUSTOMER, vec![line("a", 1, 1), line("a", 2, 1)]),
            Err(&["items[1].product_id"]),
        );
        check(
            request(CUSTOMER, vec![line("a", 0, 1)]),
            Err(&["items[0].quantity"]),
        );
        check(
            request(CUSTOMER, vec![line("a", 10_001, 1)]),
            Err(&["items[0].quantity"]),
        );
        check(
            request(CUSTOMER, vec![line("a", -5, 1)]),
            Err(&["items[0].quantity"]),
        );
        check(
            request(CUSTOMER, vec![line("a", 1, -1)]),
            Err(&["items[0].unit_price"]),
        );
        check(
            request(CUSTOMER, vec![line("a", 1, 1_000_000_001)]),
            Err(&["items[0].unit_price"]),
        );
        // Every violation is listed, not only the first.
        check(
            request("x", vec![line("", 0, -1), line("ok", 1, 1)]),
            Err(&[
                "customer_id",
                "items[0].product_id",
                "items[0].quantity",
                "items[0].unit_price",
            ]),
        );
    }

    #[test]
    fn canonical_forms_differ_exactly_when_the_orders_do() {
        let order = |quantity| validate(&request(CUSTOMER, vec![line("a", quantity, 5)])).unwrap();
        assert_eq!(canonical(&order(1)), canonical(&order(1)));
        assert_ne!(canonical(&order(1)), canonical(&order(2)));
    }

    #[test]
    fn idempotency_keys_have_a_length_and_printable_characters() {
        for (key, valid) in [
            ("k".to_owned(), true),
            ("k".repeat(255), true),
            ("order 42: retry #3 ~!".to_owned(), true),
            (String::new(), false),
            ("k".repeat(256), false),
            ("tab\there".to_owned(), false),
            (" leading".to_owned(), false),
            ("trailing ".to_owned(), false),
            ("ключ".to_owned(), false),
        ] {
            assert_eq!(idempotency_key(&key).is_ok(), valid, "{key:?}");
        }
    }
}
