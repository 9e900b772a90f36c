//! The rules a new order must satisfy, and who may place it. Pure: no I/O, every violation
//! reported at once.

use std::collections::HashSet;

use contracts::{CustomerId, OrderLine, ProductId, Quantity};
use serde::{Deserialize, Deserializer};
use service_kit::auth::{Caller, Forbidden};
use utoipa::ToSchema;

/// The most lines an order may have.
pub const MAX_LINES: usize = 100;
/// The largest quantity of one line.
pub const MAX_QUANTITY: i64 = 10_000;

/// What a client is told when it sends a price.
pub const PRICES_FROM_THE_CATALOG: &str = "prices are set by the catalog, not the client";

/// The body of `POST /orders`, as sent: types are checked by deserialisation (a wrong type is a
/// 400), values by [`validate`] (a violation is a 422). Prices are not the client's to set: a
/// `unit_price` in a line or a `total` is refused with 422 naming the field; inventory prices
/// the lines from its catalog when it reserves the stock.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct PlaceOrder {
    /// The customer the order is for (a UUID). A customer may omit it (the order is then their
    /// own) and may not name anyone else (403); an operator must name it.
    #[serde(default)]
    #[schema(format = Uuid)]
    pub customer_id: Option<String>,
    /// 1 to 100 lines, each product at most once.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<PlaceOrderLine>,
    /// Whether the body has a `total` (refused, whatever its value).
    #[serde(default, rename = "total", deserialize_with = "present")]
    #[schema(ignore)]
    pub total_sent: bool,
}

/// One line of `POST /orders`: a product and how many, never a price.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct PlaceOrderLine {
    /// 1–64 characters of `[A-Za-z0-9_-]`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub product_id: String,
    /// 1 to 10,000.
    #[serde(deserialize_with = "service_kit::extract::integer")]
    #[schema(minimum = 1, maximum = 10_000)]
    pub quantity: i64,
    /// Whether the line has a `unit_price` (refused, whatever its value).
    #[serde(default, rename = "unit_price", deserialize_with = "present")]
    #[schema(ignore)]
    pub unit_price_sent: bool,
}

/// `true` for a field that is there, whatever it holds (`null` included); with
/// `#[serde(default)]`, an absent field is `false`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer)?;
    Ok(true)
}

/// A validated order, ready to store; its prices are still unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidOrder {
    /// The customer.
    pub customer_id: CustomerId,
    /// The lines, in request order.
    pub lines: Vec<OrderLine>,
}

/// One violated rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The JSON path of the field (`items[2].quantity`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Why an order request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The body breaks rules (422).
    Invalid(Vec<Violation>),
    /// The caller may not place an order for the customer it names (403).
    Forbidden(Forbidden),
}

fn violation(field: impl Into<String>, message: impl Into<String>) -> Violation {
    Violation {
        field: field.into(),
        message: message.into(),
    }
}

/// The customer the order is for: the named one if the caller may act for them, else the
/// calling customer. `Ok(None)` after recording why there is none.
fn customer_of(
    request: &PlaceOrder,
    caller: &Caller,
    violations: &mut Vec<Violation>,
) -> Result<Option<CustomerId>, Forbidden> {
    let Some(named) = request.customer_id.as_deref() else {
        return match caller.customer() {
            Some(own) => Ok(Some(CustomerId::from(own))),
            None => {
                violations.push(violation(
                    "customer_id",
                    "required: an operator names the customer the order is for",
                ));
                Ok(None)
            }
        };
    };
    let Ok(customer_id) = named.parse::<CustomerId>() else {
        violations.push(violation("customer_id", "must be a UUID"));
        return Ok(None);
    };
    match caller.may_act_for(customer_id.as_uuid()) {
        true => Ok(Some(customer_id)),
        false => Err(Forbidden::new(
            "a customer may place orders only for themselves",
        )),
    }
}

/// Checks who may place the order, then every rule, and returns the order or every violation.
/// A caller naming a customer it may not act for is refused before the rest is looked at.
pub fn validate(request: &PlaceOrder, caller: &Caller) -> Result<ValidOrder, Refusal> {
    let mut violations = Vec::new();
    let customer_id = customer_of(request, caller, &mut violations).map_err(Refusal::Forbidden)?;
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
        if line.unit_price_sent {
            violations.push(violation(
                format!("items[{index}].unit_price"),
                PRICES_FROM_THE_CATALOG,
            ));
        }
        if let (Some(product_id), Some(quantity)) = (product_id, quantity) {
            lines.push(OrderLine {
                product_id,
                quantity,
            });
        }
    }
    if request.total_sent {
        violations.push(violation("total", PRICES_FROM_THE_CATALOG));
    }
    match (customer_id, violations.is_empty()) {
        (Some(customer_id), true) => Ok(ValidOrder { customer_id, lines }),
        _ => Err(Refusal::Invalid(violations)),
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
    use uuid::Uuid;

    const CUSTOMER: &str = "0199c3e1-0000-7000-8000-0000000000c1";
    const OTHER: &str = "0199c3e1-0000-7000-8000-0000000000c2";

    fn customer() -> Caller {
        Caller::Customer(CUSTOMER.parse::<Uuid>().unwrap())
    }

    fn operator() -> Caller {
        Caller::Operator {
            subject: "ops".into(),
        }
    }

    fn line(product_id: &str, quantity: i64) -> PlaceOrderLine {
        PlaceOrderLine {
            product_id: product_id.to_owned(),
            quantity,
            unit_price_sent: false,
        }
    }

    fn priced(product_id: &str, quantity: i64) -> PlaceOrderLine {
        PlaceOrderLine {
            unit_price_sent: true,
            ..line(product_id, quantity)
        }
    }

    fn request(customer_id: Option<&str>, items: Vec<PlaceOrderLine>) -> PlaceOrder {
        PlaceOrder {
            customer_id: customer_id.map(str::to_owned),
            items,
            total_sent: false,
        }
    }

    /// What validation should come to.
    #[derive(Debug)]
    enum Expected {
        /// Valid, for this customer, with this many lines.
        Valid(&'static str, usize),
        /// 422, naming these fields.
        Invalid(&'static [&'static str]),
        /// 403.
        Forbidden,
    }

    fn check(caller: Caller, request: PlaceOrder, expected: Expected) {
        let outcome = validate(&request, &caller);
        match (outcome, expected) {
            (Ok(order), Expected::Valid(customer_id, lines)) => {
                assert_eq!(order.customer_id.to_string(), customer_id, "{request:?}");
                assert_eq!(order.lines.len(), lines, "{request:?}");
            }
            (Err(Refusal::Invalid(violations)), Expected::Invalid(fields)) => {
                let found: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
                assert_eq!(found, fields, "{request:?}");
            }
            (Err(Refusal::Forbidden(_)), Expected::Forbidden) => {}
            (outcome, expected) => panic!("{request:?}: got {outcome:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn orders_are_validated_field_by_field() {
        use Expected::*;
        let some = Some(CUSTOMER);
        let cases = [
            (
                request(some, vec![line("a", 2), line("b", 1)]),
                Valid(CUSTOMER, 2),
            ),
            (request(some, vec![line("a", 10_000)]), Valid(CUSTOMER, 1)),
            (
                request(Some("nope"), vec![line("a", 1)]),
                Invalid(&["customer_id"]),
            ),
            (request(some, vec![]), Invalid(&["items"])),
            (
                request(some, (0..101).map(|i| line(&format!("p{i}"), 1)).collect()),
                Invalid(&["items"]),
            ),
            (
                request(some, vec![line("", 1)]),
                Invalid(&["items[0].product_id"]),
            ),
            (
                request(some, vec![line(&"x".repeat(65), 1)]),
                Invalid(&["items[0].product_id"]),
            ),
            (
                request(some, vec![line("a b", 1)]),
                Invalid(&["items[0].product_id"]),
            ),
            (
                request(some, vec![line("a", 1), line("a", 2)]),
                Invalid(&["items[1].product_id"]),
            ),
            (
                request(some, vec![line("a", 0)]),
                Invalid(&["items[0].quantity"]),
            ),
            (
                request(some, vec![line("a", 10_001)]),
                Invalid(&["items[0].quantity"]),
            ),
            (
                request(some, vec![line("a", -5)]),
                Invalid(&["items[0].quantity"]),
            ),
            // Prices are the catalog's: any unit price or total is refused, naming the field.
            (
                request(some, vec![line("a", 1), priced("b", 1)]),
                Invalid(&["items[1].unit_price"]),
            ),
            (
                PlaceOrder {
                    total_sent: true,
                    ..request(some, vec![line("a", 1)])
                },
                Invalid(&["total"]),
            ),
            // Every violation is listed, not only the first.
            (
                request(Some("x"), vec![priced("", 0), line("ok", 1)]),
                Invalid(&[
                    "customer_id",
                    "items[0].product_id",
                    "items[0].quantity",
                    "items[0].unit_price",
                ]),
            ),
        ];
        for (request, expected) in cases {
            check(customer(), request, expected);
        }
    }

    #[test]
    fn a_customer_orders_for_themselves_and_an_operator_for_the_customer_it_names() {
        use Expected::*;
        let items = || vec![line("a", 1)];
        let cases = [
            (customer(), request(None, items()), Valid(CUSTOMER, 1)),
            (
                customer(),
                request(Some(CUSTOMER), items()),
                Valid(CUSTOMER, 1),
            ),
            (customer(), request(Some(OTHER), items()), Forbidden),
            // Refused for whom it names before anything else is judged.
            (customer(), request(Some(OTHER), vec![]), Forbidden),
            (operator(), request(Some(OTHER), items()), Valid(OTHER, 1)),
            (
                operator(),
                request(None, items()),
                Invalid(&["customer_id"]),
            ),
            (
                operator(),
                request(Some("x"), items()),
                Invalid(&["customer_id"]),
            ),
        ];
        for (caller, request, expected) in cases {
            check(caller, request, expected);
        }
    }

    #[test]
    fn a_sent_price_is_noticed_whatever_it_holds() {
        for (body, refused) in [
            (r#"{"items": [{"product_id": "a", "quantity": 1}]}"#, false),
            (
                r#"{"items": [{"product_id": "a", "quantity": 1, "unit_price": null}]}"#,
                true,
            ),
            (
                r#"{"items": [{"product_id": "a", "quantity": 1, "unit_price": 0}]}"#,
                true,
            ),
            (
                r#"{"items": [{"product_id": "a", "quantity": 1}], "total": "free"}"#,
                true,
            ),
        ] {
            let request: PlaceOrder = serde_json::from_str(body).unwrap();
            let outcome = validate(&request, &customer());
            assert_eq!(outcome.is_err(), refused, "{body}: {outcome:?}");
        }
    }

    #[test]
    fn canonical_forms_differ_exactly_when_the_orders_do() {
        let order =
            |quantity| validate(&request(None, vec![line("a", quantity)]), &customer()).unwrap();
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
