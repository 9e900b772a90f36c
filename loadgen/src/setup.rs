//! The run's own data, created through the services' APIs by an operator, and the orders placed
//! against it by the customers themselves.
//!
//! Every id is unique to the run: products are `<run id>-p<k>` with ample stock and a catalog
//! price of their own, customers are fresh UUIDs — rich ones with an ample balance, broke ones
//! with a balance of 0. An order meant to complete uses ample products and a rich customer; one
//! meant to fail on stock adds a line for `<run id>-missing`, a product that does not exist; one
//! meant to fail on payment uses ample products and a broke customer. Orders name products and
//! quantities only: inventory prices them from its catalog, and what a completed order is
//! charged must be its lines at those prices. Money is always an integer in minor units.
//!
//! Every call carries a bearer token minted once per caller with the services' HS256 secret
//! ([`Tokens`]): the operator's for the setup and the final lookups, each customer's own for
//! that customer's orders.

use std::collections::HashMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::json;
use service_kit::auth::DevelopmentToken;
use uuid::Uuid;

use crate::{Error, Intent, Mix};

/// Default number of products with ample stock per run (`--products`).
pub const DEFAULT_PRODUCTS: usize = 8;
/// Default number of customers with an ample balance per run (`--customers`); a quarter as
/// many (at least one) get a balance of 0.
pub const DEFAULT_CUSTOMERS: usize = 16;
/// Most products or customers a run creates.
pub const MAX_FIXTURES: usize = 10_000;
/// Setup requests in flight at once.
const SETUP_CONCURRENCY: usize = 16;
/// Units of stock given to each product: an order takes at most 3 units of one product, so
/// this lasts for hundreds of millions of orders.
pub const STOCK: i64 = 1_000_000_000;
/// A rich customer's balance in minor units (10¹²): an order costs at most 45,000.
pub const RICH_BALANCE: i64 = 1_000_000_000_000;
/// Lowest catalog price of a product, in minor units.
pub const MIN_PRICE: i64 = 100;
/// Highest catalog price of a product, in minor units.
pub const MAX_PRICE: i64 = 5_000;
/// Most lines on one order.
pub const MAX_LINES: u64 = 3;
/// Largest quantity on one line.
pub const MAX_QUANTITY: u64 = 3;

/// A product of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
    /// Its id.
    pub id: String,
    /// Its catalog price of one unit, in minor units, [`MIN_PRICE`] to [`MAX_PRICE`].
    pub price: i64,
}

/// The ids created for one run.
#[derive(Clone, Debug)]
pub struct Fixtures {
    /// The run id, the prefix of every product id.
    pub run_id: String,
    /// Products with ample stock.
    pub products: Vec<Product>,
    /// A product id that does not exist.
    pub missing_product: String,
    /// Customers with an ample balance.
    pub rich_customers: Vec<Uuid>,
    /// Customers with a balance of 0.
    pub broke_customers: Vec<Uuid>,
    /// The intended outcome mix.
    pub mix: Mix,
}

/// One line of `POST /orders`: a product and how many, never a price (order-svc refuses one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Line {
    /// The product.
    pub product_id: String,
    /// How many, 1 to [`MAX_QUANTITY`].
    pub quantity: i64,
}

/// The body of `POST /orders`. It names no customer: the customer's own token does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrderRequest {
    /// What, 1 to [`MAX_LINES`] lines, each product at most once.
    pub items: Vec<Line>,
}

/// An order to place and what should become of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedOrder {
    /// The intended outcome.
    pub intent: Intent,
    /// Who orders (and whose token is sent).
    pub customer_id: Uuid,
    /// What to send.
    pub request: OrderRequest,
    /// What the lines cost at the run's catalog prices, in minor units: what a completed order
    /// must be charged. For an order meant to fail on stock, the lines that exist.
    pub catalog_total: i64,
}

/// A new run id: `lg-` and 10 hex digits of a fresh UUID v7's random part (a valid product id
/// prefix: letters, digits, `-`).
pub fn new_run_id() -> String {
    let simple = Uuid::now_v7().simple().to_string();
    let tail = simple.get(simple.len() - 10..).unwrap_or(&simple);
    format!("lg-{tail}")
}

impl Fixtures {
    /// The ids for `run_id` with `products` products and `customers` rich customers (and
    /// ⌈customers / 4⌉ broke ones), without creating anything. Zero counts are taken as one.
    pub fn new(run_id: &str, mix: Mix, products: usize, customers: usize) -> Fixtures {
        let (products, customers) = (products.max(1), customers.max(1));
        Fixtures {
            run_id: run_id.to_owned(),
            products: (0..products)
                .map(|k| Product {
                    id: format!("{run_id}-p{k}"),
                    price: catalog_price(k),
                })
                .collect(),
            missing_product: format!("{run_id}-missing"),
            rich_customers: (0..customers).map(|_| Uuid::now_v7()).collect(),
            broke_customers: (0..customers.div_ceil(4)).map(|_| Uuid::now_v7()).collect(),
            mix,
        }
    }

    /// Every customer of the run, rich and broke.
    pub fn customers(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.rich_customers
            .iter()
            .chain(&self.broke_customers)
            .copied()
    }

    /// The `index`-th order of the run. Deterministic: the intent comes from the mix (see
    /// [`Mix::intent`]), lines, quantities and customer from a hash of the index.
    pub fn order(&self, index: u64) -> PlannedOrder {
        let intent = self.mix.intent(index);
        let mut random = SplitMix64(index ^ 0x5eed_1eaf_0000_0000);
        // Each product at most once per order, so never more lines than products.
        let lines = 1 + random.below(MAX_LINES.min(self.products.len() as u64));
        let first = random.below(self.products.len() as u64);
        let mut priced: Vec<(Line, i64)> = (0..lines)
            .map(|line| {
                let position = (first + line) % self.products.len() as u64;
                let product = self.products.get(usize::try_from(position).unwrap_or(0));
                let line = Line {
                    product_id: product
                        .map(|product| product.id.clone())
                        .unwrap_or_default(),
                    quantity: i64::try_from(1 + random.below(MAX_QUANTITY)).unwrap_or(1),
                };
                (line, product.map_or(0, |product| product.price))
            })
            .collect();
        if intent == Intent::FailStock
            && let Some((last, price)) = priced.last_mut()
        {
            last.product_id = self.missing_product.clone();
            *price = 0;
        }
        let catalog_total = priced
            .iter()
            .map(|(line, price)| line.quantity.saturating_mul(*price))
            .fold(0_i64, i64::saturating_add);
        let items = priced.into_iter().map(|(line, _)| line).collect();
        let customers = match intent {
            Intent::Complete | Intent::FailStock => &self.rich_customers,
            Intent::FailPayment => &self.broke_customers,
        };
        let customer = random.below(customers.len() as u64);
        PlannedOrder {
            intent,
            customer_id: customers
                .get(usize::try_from(customer).unwrap_or(0))
                .copied()
                .unwrap_or_default(),
            request: OrderRequest { items },
            catalog_total,
        }
    }
}

/// The catalog price of the `k`-th product: spread over [`MIN_PRICE`]..=[`MAX_PRICE`] by a hash of
/// `k`, so that totals differ from order to order.
fn catalog_price(k: usize) -> i64 {
    let span = u64::try_from(MAX_PRICE - MIN_PRICE + 1).unwrap_or(1);
    let offset = SplitMix64(k as u64 ^ 0x0ca7_a109_0000_0000).below(span);
    MIN_PRICE + i64::try_from(offset).unwrap_or(0)
}

/// The bearer tokens of a run: an operator's and one per customer, minted once.
#[derive(Clone)]
pub struct Tokens {
    operator: String,
    customers: HashMap<Uuid, String>,
}

/// Tokens are credentials: only how many there are is shown.
impl std::fmt::Debug for Tokens {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Tokens")
            .field("customers", &self.customers.len())
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Mints, with the HS256 `secret`, an operator's token and one for each of `customers`,
    /// every one valid for `lifetime`.
    pub fn mint(
        secret: &[u8],
        customers: impl IntoIterator<Item = Uuid>,
        lifetime: Duration,
    ) -> Result<Tokens, Error> {
        let minting = |error: service_kit::auth::KeyError| {
            Error::Config(format!("cannot mint tokens with the JWT secret: {error}"))
        };
        let operator = DevelopmentToken::operator("loadgen")
            .valid_for(lifetime)
            .mint(secret)
            .map_err(minting)?;
        let mut minted = HashMap::new();
        for customer in customers {
            let token = DevelopmentToken::customer(customer)
                .valid_for(lifetime)
                .mint(secret)
                .map_err(minting)?;
            minted.insert(customer, token);
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

    /// `customer`'s own token, if the run has that customer.
    pub fn customer(&self, customer: Uuid) -> Option<&str> {
        self.customers.get(&customer).map(String::as_str)
    }
}

/// SplitMix64: a tiny, well-mixed, deterministic generator (no dependency, no global state).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (0 when `bound` is 0); the modulo bias is negligible here.
    fn below(&mut self, bound: u64) -> u64 {
        self.next().checked_rem(bound).unwrap_or(0)
    }
}

/// The base URLs of the services the run talks to.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// order-svc.
    pub order: String,
    /// inventory-svc.
    pub inventory: String,
    /// payment-svc.
    pub payment: String,
}

/// Checks that the services are ready and, as an operator, creates the run's products (stock
/// and catalog price) and funds its customers' accounts.
pub async fn prepare(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    fixtures: &Fixtures,
    tokens: &Tokens,
) -> Result<(), Error> {
    for base in [&endpoints.order, &endpoints.inventory, &endpoints.payment] {
        let url = format!("{}/health/ready", base.trim_end_matches('/'));
        expect_success(http.get(&url), &format!("GET {url}")).await?;
    }
    let inventory = endpoints.inventory.trim_end_matches('/');
    let payment = endpoints.payment.trim_end_matches('/');
    let stock = fixtures.products.iter().map(|product| {
        (
            format!("{inventory}/products/{}", product.id),
            json!({ "available": STOCK, "price": product.price }),
        )
    });
    let accounts = fixtures
        .rich_customers
        .iter()
        .map(|customer| (customer, RICH_BALANCE))
        .chain(
            fixtures
                .broke_customers
                .iter()
                .map(|customer| (customer, 0)),
        )
        .map(|(customer, balance)| {
            (
                format!("{payment}/accounts/{customer}"),
                json!({ "balance": balance }),
            )
        });
    futures::stream::iter(stock.chain(accounts))
        .map(|(url, body)| async move {
            let request = http.put(&url).bearer_auth(tokens.operator()).json(&body);
            expect_success(request, &format!("PUT {url}")).await
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

async fn expect_success(request: reqwest::RequestBuilder, context: &str) -> Result<(), Error> {
    let response = request.send().await.map_err(|source| Error::Http {
        context: context.to_owned(),
        source,
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let mut body = crate::truncate(&response.text().await.unwrap_or_default(), 300);
    if status == reqwest::StatusCode::UNAUTHORIZED {
        // The one likely cause, said plainly: the token itself is well-formed.
        body.push_str(" (is --jwt-secret the services' AUTH_JWT_SECRET?)");
    }
    Err(Error::Status {
        context: context.to_owned(),
        status: status.as_u16(),
        body,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeSet;

    use super::*;

    fn fixtures(fail_stock: f64, fail_payment: f64) -> Fixtures {
        Fixtures::new(
            "lg-0123456789",
            Mix {
                fail_stock,
                fail_payment,
            },
            DEFAULT_PRODUCTS,
            DEFAULT_CUSTOMERS,
        )
    }

    #[test]
    fn run_ids_are_valid_product_id_prefixes() {
        let run_id = new_run_id();
        assert_eq!(run_id.len(), 13);
        let product = format!("{run_id}-missing");
        assert!(product.len() <= 64);
        assert!(
            product
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(new_run_id(), new_run_id());
    }

    #[test]
    fn orders_follow_their_intent() {
        let fixtures = fixtures(0.1, 0.1);
        let rich: BTreeSet<_> = fixtures.rich_customers.iter().collect();
        let broke: BTreeSet<_> = fixtures.broke_customers.iter().collect();
        let prices: HashMap<_, _> = fixtures
            .products
            .iter()
            .map(|product| (product.id.clone(), product.price))
            .collect();
        for index in 0..2_000 {
            let order = fixtures.order(index);
            assert_eq!(order, fixtures.order(index), "deterministic");
            let items = &order.request.items;
            assert!((1..=3).contains(&items.len()));
            let products: BTreeSet<_> = items.iter().map(|line| &line.product_id).collect();
            assert_eq!(products.len(), items.len(), "no product twice");
            assert!(items.iter().all(|line| (1..=3).contains(&line.quantity)));
            let at_catalog_prices: i64 = items
                .iter()
                .map(|line| line.quantity * prices.get(&line.product_id).copied().unwrap_or(0))
                .sum();
            assert_eq!(order.catalog_total, at_catalog_prices, "order {index}");
            let missing = items
                .iter()
                .filter(|line| line.product_id == fixtures.missing_product)
                .count();
            let customer = &order.customer_id;
            match order.intent {
                Intent::Complete => assert!(missing == 0 && rich.contains(customer)),
                Intent::FailStock => assert!(missing == 1 && rich.contains(customer)),
                Intent::FailPayment => assert!(missing == 0 && broke.contains(customer)),
            }
        }
    }

    #[test]
    fn products_have_catalog_prices_in_range_and_not_all_alike() {
        let fixtures = Fixtures::new(
            "lg-0123456789",
            Mix {
                fail_stock: 0.0,
                fail_payment: 0.0,
            },
            100,
            1,
        );
        let prices: BTreeSet<i64> = fixtures
            .products
            .iter()
            .map(|product| product.price)
            .collect();
        assert!(
            prices
                .iter()
                .all(|price| (MIN_PRICE..=MAX_PRICE).contains(price))
        );
        assert!(prices.len() > 50, "prices are spread: {prices:?}");
        let again = Fixtures::new("lg-9876543210", fixtures.mix, 100, 1);
        let same: Vec<i64> = again.products.iter().map(|product| product.price).collect();
        let first: Vec<i64> = fixtures
            .products
            .iter()
            .map(|product| product.price)
            .collect();
        assert_eq!(
            same, first,
            "a product's price depends on its position only"
        );
    }

    #[test]
    fn the_mix_is_close_to_the_fractions_from_the_start() {
        for (fail_stock, fail_payment) in [(0.1, 0.1), (0.0, 0.0), (0.25, 0.5), (1.0, 0.0)] {
            let fixtures = fixtures(fail_stock, fail_payment);
            for n in [30_u64, 100, 1_000] {
                let count = |intent| {
                    (0..n)
                        .filter(|&index| fixtures.order(index).intent == intent)
                        .count() as f64
                };
                let tolerance = 3.0;
                assert!((count(Intent::FailStock) - fail_stock * n as f64).abs() <= tolerance);
                assert!((count(Intent::FailPayment) - fail_payment * n as f64).abs() <= tolerance);
            }
        }
        // The default mix exercises every outcome within the first 30 orders.
        let fixtures = fixtures(0.1, 0.1);
        let intents: BTreeSet<_> = (0..30).map(|index| fixtures.order(index).intent).collect();
        assert_eq!(intents.len(), 3);
    }

    #[test]
    fn counts_of_products_and_customers_are_honoured() {
        let mix = Mix {
            fail_stock: 0.1,
            fail_payment: 0.1,
        };
        let single = Fixtures::new("lg-0123456789", mix, 1, 1);
        assert_eq!(
            (
                single.products.len(),
                single.rich_customers.len(),
                single.broke_customers.len()
            ),
            (1, 1, 1)
        );
        for index in 0..500 {
            let order = single.order(index);
            assert_eq!(order.request.items.len(), 1, "one product, one line");
        }
        let many = Fixtures::new("lg-0123456789", mix, 100, 40);
        assert_eq!(
            (
                many.products.len(),
                many.rich_customers.len(),
                many.broke_customers.len()
            ),
            (100, 40, 10)
        );
        assert_eq!(many.customers().count(), 50);
        let used: BTreeSet<_> = (0..2_000)
            .flat_map(|index| many.order(index).request.items)
            .map(|line| line.product_id)
            .collect();
        assert!(used.len() > 90, "products are spread: {}", used.len());
    }

    #[test]
    fn the_request_body_names_products_and_quantities_only() {
        let fixtures = fixtures(0.0, 0.0);
        let body = serde_json::to_value(&fixtures.order(7).request).unwrap();
        assert_eq!(
            body.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["items"],
            "the customer's token names the customer: {body}"
        );
        let line = body["items"][0].as_object().unwrap();
        assert_eq!(
            line.keys().collect::<BTreeSet<_>>(),
            BTreeSet::from([&"product_id".to_owned(), &"quantity".to_owned()]),
            "no price: {body}"
        );
        assert!(
            line["product_id"]
                .as_str()
                .unwrap()
                .starts_with("lg-0123456789-p")
        );
        assert!(line["quantity"].is_i64());
    }

    #[test]
    fn tokens_name_their_callers() {
        let secret = b"loadgen test secret of at least 32 bytes";
        let fixtures = fixtures(0.1, 0.1);
        let tokens = Tokens::mint(secret, fixtures.customers(), Duration::from_secs(60)).unwrap();
        let authenticator = service_kit::auth::Authenticator::hs256(secret).unwrap();
        assert!(
            authenticator
                .verify(tokens.operator())
                .unwrap()
                .is_operator()
        );
        for customer in fixtures.customers() {
            let token = tokens.customer(customer).unwrap();
            assert_eq!(
                authenticator.verify(token).unwrap(),
                service_kit::auth::Caller::Customer(customer)
            );
        }
        assert!(tokens.customer(Uuid::now_v7()).is_none());
        assert!(!format!("{tokens:?}").contains(tokens.operator()));
    }
}
