//! What the harness sets up and remembers: products and their initial stock, customers and
//! their initial balances, and every order the system accepted.

use std::collections::HashMap;

use anyhow::{Context, bail};
use serde_json::json;

use crate::rng::Rng;

/// Products of a run and their initial stock in hundredths of a unit per order of the run.
/// A normal order asks for about 2.4 units (one or two lines of one to three): the 2.0 units
/// per order in all run out for the scarcer products part-way through, so that some orders
/// fail on stock at any size of run while most complete (a fixed stock would run out after
/// the first few hundred orders and turn a long run into a run of stock failures).
pub const PRODUCTS: [(&str, i64); 5] = [
    ("chaos-a", 55),
    ("chaos-b", 55),
    ("chaos-c", 45),
    ("chaos-d", 30),
    ("chaos-e", 15),
];
/// A product that does not exist: orders for it fail on stock.
pub const MISSING_PRODUCT: &str = "chaos-missing";
/// Balance of customers who can pay for anything in a run.
pub const RICH_BALANCE: i64 = 10_000_000;
/// Balance of customers who can pay for almost nothing.
pub const POOR_BALANCE: i64 = 150;

/// The world the run starts from.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Initial stock per product.
    pub stock: HashMap<String, i64>,
    /// Initial balance per customer.
    pub balances: HashMap<String, i64>,
    /// Customers who can pay.
    pub rich: Vec<String>,
    /// Customers who mostly cannot.
    pub poor: Vec<String>,
}

/// Sets stock (scaled to `orders`) and balances through the services' APIs.
pub async fn set_up(
    http: &reqwest::Client,
    inventory_url: &str,
    payment_url: &str,
    orders: u64,
    rng: &mut Rng,
) -> anyhow::Result<Setup> {
    let mut stock = HashMap::new();
    for (product, hundredths_per_order) in PRODUCTS {
        let orders = i64::try_from(orders).unwrap_or(i64::MAX / 100);
        let units = (orders.saturating_mul(hundredths_per_order) / 100).max(10);
        put(
            http,
            &format!("{inventory_url}/products/{product}"),
            json!({ "available": units }),
        )
        .await?;
        stock.insert(product.to_owned(), units);
    }
    let mut balances = HashMap::new();
    let (mut rich, mut poor) = (Vec::new(), Vec::new());
    for index in 0..25 {
        let customer = uuid::Uuid::from_u64_pair(rng.next_u64(), rng.next_u64()).to_string();
        let balance = if index < 20 {
            RICH_BALANCE
        } else {
            POOR_BALANCE
        };
        put(
            http,
            &format!("{payment_url}/accounts/{customer}"),
            json!({ "balance": balance }),
        )
        .await?;
        balances.insert(customer.clone(), balance);
        match index < 20 {
            true => rich.push(customer),
            false => poor.push(customer),
        }
    }
    Ok(Setup {
        stock,
        balances,
        rich,
        poor,
    })
}

async fn put(http: &reqwest::Client, url: &str, body: serde_json::Value) -> anyhow::Result<()> {
    let response = http
        .put(url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("PUT {url}"))?;
    if !response.status().is_success() {
        bail!("PUT {url} answered {}", response.status());
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
    /// `(product, quantity, unit price)`.
    pub lines: Vec<(String, i64, i64)>,
}
