//! The console in a real browser — Debian's headless Chromium driven through its ChromeDriver
//! (`fantoccini`) — against the four real services: an operator signs in, finds an order by
//! filter, opens it and reads its timeline, sees the saga drawn with its counts, and redrives a
//! dead letter and watches it leave the list. The same run takes the screenshots in `docs/`
//! (`UPDATE_SCREENSHOTS=1 cargo test -p console --test browser` writes them there).
//!
//! Needs `chromium` and `chromedriver` on the PATH (`scripts/dev-servers.sh` installs Debian's
//! `chromium` and `chromium-driver`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use contracts::{CustomerId, Envelope, Money, OrderCompleted, OrderId, Service};
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use testkit::auth::Identity;
use testkit::bus::TestBus;
use testkit::client::{Client, new_customer};
use testkit::system::{Svc, System, SystemConfig};
use tokio_util::sync::CancellationToken;

/// How long the browser waits for an element to appear.
const PATIENCE: Duration = Duration::from_secs(30);

/// A ChromeDriver of the test's own on a free port, killed when dropped.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver runs (install Debian's chromium and chromium-driver: \
                 scripts/dev-servers.sh does)",
            );
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return ChromeDriver {
                    child,
                    url: format!("http://127.0.0.1:{port}"),
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("chromedriver did not listen on port {port}");
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session.
async fn browser(driver: &ChromeDriver) -> Browser {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1000"]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Saves the page as `console-<name>.png`: into `docs/` (the README's) with
/// `UPDATE_SCREENSHOTS=1`, else into the test's scratch directory, so that a test run leaves
/// the working tree as it was.
async fn screenshot(browser: &Browser, name: &str) {
    let png = browser.screenshot().await.unwrap();
    let directory = match std::env::var("UPDATE_SCREENSHOTS").as_deref() {
        Ok("1") => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs"),
        _ => PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
    };
    std::fs::write(directory.join(format!("console-{name}.png")), png).unwrap();
}

/// The console, in this process, on a free port, calling `system`'s services; its base URL
/// (on `localhost`, where browsers keep `Secure` cookies over plain HTTP).
async fn start_console(system: &System, shutdown: CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let variables = [
        ("CONSOLE_ORDER_URL", system.instance_url(Svc::Order, 0)),
        (
            "CONSOLE_INVENTORY_URL",
            system.instance_url(Svc::Inventory, 0),
        ),
        ("CONSOLE_PAYMENT_URL", system.instance_url(Svc::Payment, 0)),
        ("CONSOLE_NOTIFY_URL", system.instance_url(Svc::Notify, 0)),
        (
            "CONSOLE_TRACE_URL",
            "http://localhost:16686/trace/{trace_id}".to_owned(),
        ),
        ("AUTH_JWT_SECRET", testkit::auth::SECRET.to_owned()),
    ];
    let config = console::Config::from_lookup(&|name: &str| {
        variables
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| value.clone())
    })
    .unwrap();
    tokio::spawn(console::run_with_listener(config, listener, shutdown));
    format!("http://localhost:{port}")
}

/// The text of the first element `css` selects, once it is there.
async fn text_of(browser: &Browser, css: &str) -> String {
    browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("{css}: {error}"))
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_finds_an_order_reads_its_story_sees_the_saga_and_redrives_a_dead_letter() {
    let system = System::start(SystemConfig::default()).await;
    let client = Client::new(&system);
    let (rich, poor) = (new_customer(), new_customer());
    client.set_product("console-widget", 100, 250).await;
    client.set_balance(&rich, 100_000).await;
    client.set_balance(&poor, 100).await;
    let mut completed = Vec::new();
    for _ in 0..3 {
        let (_, order) = client.place(&rich, &[("console-widget", 2)], None).await;
        completed.push(order["id"].as_str().unwrap().to_owned());
    }
    let (_, refused) = client.place(&poor, &[("console-widget", 1)], None).await;
    let cancelled = refused["id"].as_str().unwrap().to_owned();
    for order_id in completed.iter().chain([&cancelled]) {
        client.wait_terminal(order_id, PATIENCE).await;
    }
    // A notification notify-svc gave up on (as it would have): legitimate, so a redrive
    // delivers it and it leaves the dead letters for good.
    let bus = TestBus::connect(system.vhost(), &[]).await;
    let fact = OrderCompleted {
        order_id: OrderId::generate(),
        customer_id: CustomerId::generate(),
        total: Money::new(500).unwrap(),
    };
    let dead = Envelope::new(&fact, None).unwrap();
    bus.dead_letter(
        Service::Notify,
        "notify-svc.OrderCompleted",
        &dead,
        "gave up after 5 attempts: the mail relay timed out",
    )
    .await;

    let shutdown = CancellationToken::new();
    let console = start_console(&system, shutdown.clone()).await;
    let driver = ChromeDriver::start();
    let browser = browser(&driver).await;

    // Signed out, every page leads to the sign-in form; a customer's token is refused.
    browser.goto(&format!("{console}/orders")).await.unwrap();
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/sign-in")
    );
    let sign_in = |token: String| {
        let browser = browser.clone();
        async move {
            let field = browser.find(Locator::Css("#token")).await.unwrap();
            field.clear().await.unwrap();
            field.send_keys(&token).await.unwrap();
            browser
                .find(Locator::Css("form.sign-in button"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
        }
    };
    sign_in(testkit::auth::token(&Identity::Customer(uuid::Uuid::now_v7())).unwrap()).await;
    let refusal = text_of(&browser, "p.error").await;
    assert!(refusal.contains("operators"), "{refusal}");
    screenshot(&browser, "sign-in").await;
    sign_in(testkit::auth::token(&Identity::Operator).unwrap()).await;

    // Orders: every order is listed; the Cancelled filter finds the refused one alone.
    text_of(&browser, "table#orders").await;
    for order_id in completed.iter().chain([&cancelled]) {
        assert!(
            browser
                .find(Locator::Css(&format!("a[href='/orders/{order_id}']")))
                .await
                .is_ok(),
            "{order_id} is listed"
        );
    }
    screenshot(&browser, "orders").await;
    browser
        .find(Locator::Css("select[name=status]"))
        .await
        .unwrap()
        .select_by_value("Cancelled")
        .await
        .unwrap();
    browser
        .find(Locator::Css("form.filters button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(
            "select[name=status] option[value=Cancelled][selected]",
        ))
        .await
        .expect("the filtered list");
    let rows = browser
        .find_all(Locator::Css("table#orders tbody tr"))
        .await
        .unwrap();
    let mut statuses = Vec::new();
    for row in &rows {
        statuses.push(row.attr("data-status").await.unwrap().unwrap_or_default());
    }
    assert!(!statuses.is_empty() && statuses.iter().all(|status| status == "Cancelled"));

    // The refused order: its status, why, and its timeline from Pending to Cancelled.
    browser
        .find(Locator::Css(&format!("a[href='/orders/{cancelled}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text_of(&browser, "#status").await, "Cancelled");
    let timeline = text_of(&browser, "#timeline").await;
    assert!(timeline.contains("placed → Pending"), "{timeline}");
    assert!(timeline.contains("→ Cancelled"), "{timeline}");
    assert!(!text_of(&browser, "#cancellation-reason").await.is_empty());
    // A completed order: the whole way, its payment as payment-svc holds it, its trace.
    browser
        .goto(&format!("{console}/orders/{}", completed[0]))
        .await
        .unwrap();
    assert_eq!(text_of(&browser, "#status").await, "Completed");
    let timeline = text_of(&browser, "#timeline").await;
    for step in ["Pending → Reserved", "Reserved → Paid", "Paid → Completed"] {
        assert!(timeline.contains(step), "{step} in {timeline}");
    }
    assert!(text_of(&browser, "#payment").await.contains("Charged"));
    let trace = browser.find(Locator::Css("a#trace")).await.unwrap();
    assert!(
        trace
            .attr("href")
            .await
            .unwrap()
            .unwrap()
            .starts_with("http://localhost:16686/trace/")
    );
    screenshot(&browser, "order").await;

    // The saga: drawn by Mermaid (an SVG), with the orders in each state now.
    browser.goto(&format!("{console}/saga")).await.unwrap();
    browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("body[data-diagram=rendered] #diagram svg"))
        .await
        .expect("Mermaid draws the diagram");
    let diagram = text_of(&browser, "#diagram svg").await;
    assert!(diagram.contains("Completed · 3 now"), "{diagram}");
    assert_eq!(
        text_of(&browser, "#states tr[data-state=Cancelled] td.number").await,
        "1"
    );
    screenshot(&browser, "saga").await;

    // Dead letters: the notification is listed with its reason; redriven, it leaves.
    browser
        .goto(&format!("{console}/dead-letters"))
        .await
        .unwrap();
    let letter = format!("article.dead-letter[data-id='{}']", dead.message_id);
    assert!(
        text_of(&browser, &letter)
            .await
            .contains("the mail relay timed out")
    );
    screenshot(&browser, "dead-letters").await;
    browser
        .find(Locator::Css(&format!("{letter} button.redrive")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text_of(&browser, "p.notice").await.contains("Redriven"));
    let mut gone = false;
    for _ in 0..40 {
        browser
            .goto(&format!("{console}/dead-letters"))
            .await
            .unwrap();
        text_of(&browser, "section.service[data-service=notify-svc]").await;
        if browser.find(Locator::Css(&letter)).await.is_err() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(gone, "the redriven notification left the dead letters");
    let mut notifications = Vec::new();
    for _ in 0..100 {
        notifications = client.notifications(&fact.order_id.to_string()).await;
        if !notifications.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        notifications.len(),
        1,
        "notify-svc handled it: {notifications:?}"
    );

    browser.close().await.unwrap();
    shutdown.cancel();
}
