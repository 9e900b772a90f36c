//! What the harness sets up and remembers: products with their initial stock and catalog
//! price, customers with their initial balances (and customers without an account), the bearer
//! tokens of every caller, and every order the system accepted.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;
use service_kit::auth::DevelopmentToken;

use crate::rng::Rng;

/// A product of the run.
#[derive(Clone, Copy, Debug)]
pub struct Product {
    /// Its id.
    pub id: &'static str,
    /// Initial stock in hundredths of a unit per order of the run. A normal order asks for
    /// about 2.4 units (one or two lines of one to three): the 2.0 units per order in all run
    /// out for the scarcer products part-way through, so that some orders fail on stock at any
    /// size of run while most complete (a fixed stock would run out after the first few
    /// hundred orders and turn a long run into a run of stock failures).
    pub hundredths_per_order: i64,
    /// Catalog price of one unit, in minor units: what inventory prices reservations at.
    pub price: i64,
}

/// Products of the run. The cheapest costs less than [`POOR_BALANCE`], so that a poor customer
/// can pay for some orders and not for most.
pub const PRODUCTS: [Product; 5] = [
    Product {
        id: "chaos-a",
        hundredths_per_order: 55,
        price: 120,
    },
    Product {
        id: "chaos-b",
        hundredths_per_order: 55,
        price: 250,
    },
    Product {
        id: "chaos-c",
        hundredths_per_order: 45,
        price: 399,
    },
    Product {
        id: "chaos-d",
        hundredths_per_order: 30,
        price: 575,
    },
    Product {
        id: "chaos-e",
        hundredths_per_order: 15,
        price: 900,
    },
];
/// A product that does not exist: orders for it fail on stock.
pub const MISSING_PRODUCT: &str = "chaos-missing";
/// Balance of customers who can pay for anything in a run.
pub const RICH_BALANCE: i64 = 10_000_000;
/// Balance of customers who can pay for almost nothing.
pub const POOR_BALANCE: i64 = 150;
/// Customers an operator funds with [`RICH_BALANCE`].
const RICH_CUSTOMERS: usize = 20;
/// Customers an operator funds with [`POOR_BALANCE`].
const POOR_CUSTOMERS: usize = 5;
/// Customers nobody funds: payment must open no account for them, so their orders fail.
const STRANGERS: usize = 3;

/// The bearer tokens of the run's callers, minted once with the system's secret.
#[derive(Clone, Debug)]
pub struct Tokens {
    operator: String,
    customers: HashMap<String, String>,
}

impl Tokens {
    /// An operator's token and one token per customer, valid for `lifetime`.
    pub fn mint<'a>(
        secret: &[u8],
        customers: impl IntoIterator<Item = &'a str>,
        lifetime: Duration,
    ) -> anyhow::Result<Tokens> {
        let operator = DevelopmentToken::operator("chaos")
            .valid_for(lifetime)
            .mint(secret)
            .context("minting the operator's token")?;
        let mut minted = HashMap::new();
        for customer in customers {
            let id: uuid::Uuid = customer
                .parse()
                .with_context(|| format!("customer id {customer:?} is not a UUID"))?;
            let token = DevelopmentToken::customer(id)
                .valid_for(lifetime)
                .mint(secret)
                .with_context(|| format!("minting the token of customer {customer}"))?;
            minted.insert(customer.to_owned(), token);
        }
        Ok(Tokens {
            operator,
            customers: minted,
        })
    }

    /// The operator's token.
    pub fn operator(&self) -> &str {
        &self.operator
    }

    /// A customer's own token (`None` for a customer the run does not know).
    pub fn customer(&self, customer: &str) -> Option<&str> {
        self.customers.get(customer).map(String::as_str)
    }
}

/// The world the run starts from.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Initial stock per product.
    pub stock: HashMap<String, i64>,
    /// Catalog price per product, fixed for the run.
    pub prices: HashMap<String, i64>,
    /// Initial balance per funded customer.
    pub balances: HashMap<String, i64>,
    /// Customers who can pay.
    pub rich: Vec<String>,
    /// Customers who mostly cannot.
    pub poor: Vec<String>,
    /// Customers without an account.
    pub strangers: Vec<String>,
    /// Every caller's token.
    pub tokens: Tokens,
}

impl Setup {
    /// What `lines` cost at the run's catalog prices, `None` if a product is not in the
    /// catalog (such an order is never priced).
    pub fn catalog_total(&self, lines: &[(String, i64)]) -> Option<i64> {
        lines.iter().try_fold(0_i64, |total, (product, quantity)| {
            let price = self.prices.get(product)?;
            total.checked_add(quantity.checked_mul(*price)?)
        })
    }
}

/// Creates the customers and their tokens, then, as an operator, sets stock (scaled to
/// `orders`) and prices and funds every customer but the strangers through the services' APIs.
pub async fn set_up(
    http: &reqwest::Client,
    inventory_url: &str,
    payment_url: &str,
    orders: u64,
    token_lifetime: Duration,
    rng: &mut Rng,
) -> anyhow::Result<Setup> {
    let mut customer = || uuid::Uuid::from_u64_pair(rng.next_u64(), rng.next_u64()).to_string();
    let rich: Vec<String> = (0..RICH_CUSTOMERS).map(|_| customer()).collect();
    let poor: Vec<String> = (0..POOR_CUSTOMERS).map(|_| customer()).collect();
    let strangers: Vec<String> = (0..STRANGERS).map(|_| customer()).collect();
    let tokens = Tokens::mint(
        testkit::auth::SECRET.as_bytes(),
        rich.iter()
            .chain(&poor)
            .chain(&strangers)
            .map(String::as_str),
        token_lifetime,
    )?;
    let operator = tokens.operator();

    let (mut stock, mut prices) = (HashMap::new(), HashMap::new());
    for product in PRODUCTS {
        let orders = i64::try_from(orders).unwrap_or(i64::MAX / 100);
        let units = (orders.saturating_mul(product.hundredths_per_order) / 100).max(10);
        put(
            http,
            operator,
            &format!("{inventory_url}/products/{}", product.id),
            json!({ "available": units, "price": product.price }),
        )
        .await?;
        stock.insert(product.id.to_owned(), units);
        prices.insert(product.id.to_owned(), product.price);
    }
    let mut balances = HashMap::new();
    let funded = rich
        .iter()
        .map(|customer| (customer, RICH_BALANCE))
        .chain(poor.iter().map(|customer| (customer, POOR_BALANCE)));
    for (customer, balance) in funded {
        put(
            http,
            operator,
            &format!("{payment_url}/accounts/{customer}"),
            json!({ "balance": balance }),
        )
        .await?;
        balances.insert(customer.clone(), balance);
    }
    Ok(Setup {
        stock,
        prices,
        balances,
        rich,
        poor,
        strangers,
        tokens,
    })
}

async fn put(
    http: &reqwest::Client,
    token: &str,
    url: &str,
    body: serde_json::Value,
) -> anyhow::Result<()> {
    let response = http
        .put(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("PUT {url}"))?;
    let status = response.status();
    if !status.is_success() {
        let answer = response.text().await.unwrap_or_default();
        bail!("PUT {url} answered {status}: {answer}");
    }
    Ok(())
}

/// What an order was meant to test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A rich customer and existing products: completes unless stock runs out or a fault
    /// outlasts the deadline.
    Normal,
    /// A product that does not exist: cancelled.
    UnknownProduct,
    /// A poor customer: cancelled unless the order is cheaper than the balance.
    PoorCustomer,
    /// A customer without an account: cancelled, and no account is opened.
    Stranger,
}

/// An order the system accepted.
#[derive(Clone, Debug)]
pub struct Placed {
    /// Its id.
    pub order_id: String,
    /// What it was meant to test.
    pub kind: Kind,
    /// The customer.
    pub customer: String,
    /// Whether an operator placed it for the customer (else the customer did).
    pub by_operator: bool,
    /// `(product, quantity)`: the client sends no price.
    pub lines: Vec<(String, i64)>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn catalog_totals_are_the_lines_at_catalog_prices() {
        let setup = Setup {
            stock: HashMap::new(),
            prices: HashMap::from([("a".to_owned(), 120), ("b".to_owned(), i64::MAX)]),
            balances: HashMap::new(),
            rich: Vec::new(),
            poor: Vec::new(),
            strangers: Vec::new(),
            tokens: Tokens::mint(
                b"chaos unit tests: a secret of 32+ bytes",
                [],
                Duration::from_secs(60),
            )
            .unwrap(),
        };
        let lines = |lines: &[(&str, i64)]| -> Vec<(String, i64)> {
            lines
                .iter()
                .map(|&(product, quantity)| (product.to_owned(), quantity))
                .collect()
        };
        for (ordered, total) in [
            (lines(&[("a", 3)]), Some(360)),
            (lines(&[]), Some(0)),
            (lines(&[("a", 1), ("missing", 1)]), None),
            (lines(&[("b", 2)]), None),
        ] {
            assert_eq!(setup.catalog_total(&ordered), total, "{ordered:?}");
        }
    }

    #[test]
    fn tokens_name_their_callers() {
        let secret = b"chaos unit tests: a secret of 32+ bytes";
        let customer = uuid::Uuid::now_v7();
        let id = customer.to_string();
        let tokens = Tokens::mint(secret, [id.as_str()], Duration::from_secs(60)).unwrap();
        let authenticator = service_kit::auth::Authenticator::hs256(secret).unwrap();
        assert!(
            authenticator
                .verify(tokens.operator())
                .unwrap()
                .is_operator()
        );
        assert_eq!(
            authenticator.verify(tokens.customer(&id).unwrap()).unwrap(),
            service_kit::auth::Caller::Customer(customer)
        );
        assert!(tokens.customer("someone else").is_none());
        assert!(Tokens::mint(secret, ["not-a-uuid"], Duration::from_secs(60)).is_err());
    }
}
