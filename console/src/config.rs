//! Configuration from the environment: [`Variables`] describes every variable the console
//! reads; [`ENVIRONMENT`] and `console --help` are generated from it.

use std::net::SocketAddr;
use std::sync::LazyLock;

use clap::{CommandFactory, Parser};
use service_kit::auth::{AuthConfig, AuthVariables};
use service_kit::config::{ConfigError, Lookup};

/// Every environment variable the console reads, generated from [`Variables`], then
/// `RUST_LOG` and `LOG_FORMAT`.
pub static ENVIRONMENT: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| service_kit::config::service_environment(&DESCRIPTION));

static DESCRIPTION: LazyLock<clap::Command> = LazyLock::new(Variables::command);

/// The placeholder of `CONSOLE_TRACE_URL`.
pub const TRACE_ID_PLACEHOLDER: &str = "{trace_id}";

/// The operator console: orders, their histories, the saga at work and the dead letters.
#[derive(Parser)]
#[command(name = "console")]
struct Variables {
    /// The address the console listens on.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8084")]
    http_addr: SocketAddr,
    /// order-svc's base URL.
    #[arg(
        long,
        env = "CONSOLE_ORDER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    order_url: String,
    /// inventory-svc's base URL.
    #[arg(
        long,
        env = "CONSOLE_INVENTORY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    inventory_url: String,
    /// payment-svc's base URL.
    #[arg(
        long,
        env = "CONSOLE_PAYMENT_URL",
        default_value = "http://127.0.0.1:8082"
    )]
    payment_url: String,
    /// notify-svc's base URL.
    #[arg(
        long,
        env = "CONSOLE_NOTIFY_URL",
        default_value = "http://127.0.0.1:8083"
    )]
    notify_url: String,
    /// A trace viewer's page of one trace, with `{trace_id}` where the id goes, e.g.
    /// `http://localhost:16686/trace/{trace_id}` for Jaeger; unset, orders show their trace id
    /// without a link.
    #[arg(long, env = "CONSOLE_TRACE_URL")]
    trace_url: Option<String>,
    /// Send the session cookie over plain HTTP too (without `Secure`). Browsers keep `Secure`
    /// cookies from `http://localhost`; set this only to reach the console over plain HTTP
    /// under another name, on a network you trust.
    #[arg(long, env = "CONSOLE_INSECURE_COOKIE", default_value_t = false, action = clap::ArgAction::Set)]
    insecure_cookie: bool,
    #[command(flatten)]
    auth: AuthVariables,
}

/// The console's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `HTTP_ADDR`, default `0.0.0.0:8084`.
    pub http_addr: SocketAddr,
    /// Where each service answers.
    pub services: ServiceUrls,
    /// `CONSOLE_TRACE_URL`: a trace's page, with [`TRACE_ID_PLACEHOLDER`] in it.
    pub trace_url: Option<String>,
    /// `CONSOLE_INSECURE_COOKIE`: leave `Secure` off the session cookie.
    pub insecure_cookie: bool,
    /// `AUTH_JWT_*`: how the operator's token is verified at sign-in and on every request.
    pub auth: AuthConfig,
}

/// The base URLs of the four services, without a trailing slash.
#[derive(Clone, Debug)]
pub struct ServiceUrls {
    /// order-svc.
    pub order: String,
    /// inventory-svc.
    pub inventory: String,
    /// payment-svc.
    pub payment: String,
    /// notify-svc.
    pub notify: String,
}

impl Config {
    /// Reads the process environment; `console --help` describes every variable instead.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_variables(service_kit::config::read_process_environment()?)
    }

    /// Reads variables through `lookup`.
    pub fn from_lookup(lookup: Lookup<'_>) -> Result<Config, ConfigError> {
        Config::from_variables(service_kit::config::read(lookup)?)
    }

    fn from_variables(variables: Variables) -> Result<Config, ConfigError> {
        if let Some(trace_url) = &variables.trace_url
            && !trace_url.is_empty()
            && !trace_url.contains(TRACE_ID_PLACEHOLDER)
        {
            return Err(ConfigError::Invalid {
                name: "CONSOLE_TRACE_URL".to_owned(),
                value: trace_url.clone(),
                reason: format!("must contain {TRACE_ID_PLACEHOLDER}"),
            });
        }
        let base = |url: String| url.trim_end_matches('/').to_owned();
        Ok(Config {
            http_addr: variables.http_addr,
            services: ServiceUrls {
                order: base(variables.order_url),
                inventory: base(variables.inventory_url),
                payment: base(variables.payment_url),
                notify: base(variables.notify_url),
            },
            trace_url: variables.trace_url.filter(|url| !url.is_empty()),
            insecure_cookie: variables.insecure_cookie,
            auth: AuthConfig::from_variables(variables.auth)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// (order URL, trace URL, insecure cookie), or the variable the error names.
    type Read = Result<(&'static str, Option<&'static str>, bool), &'static str>;

    fn check(changes: &[(&str, &str)], expected: Read) {
        let mut variables: HashMap<&str, &str> = [(
            "AUTH_JWT_SECRET",
            "a test secret that is at least 32 bytes long",
        )]
        .into_iter()
        .collect();
        variables.extend(changes.iter().copied());
        let read = Config::from_lookup(&|name: &str| variables.get(name).map(|v| (*v).to_owned()))
            .map(|config| {
                (
                    config.services.order,
                    config.trace_url,
                    config.insecure_cookie,
                )
            })
            .map_err(|error| error.variable().to_owned());
        let expected = expected
            .map(|(order, trace, insecure)| (order.to_owned(), trace.map(str::to_owned), insecure))
            .map_err(str::to_owned);
        assert_eq!(read, expected, "{changes:?}");
    }

    #[test]
    fn reads_the_environment_with_defaults() {
        check(&[], Ok(("http://127.0.0.1:8080", None, false)));
        check(
            &[("CONSOLE_ORDER_URL", "http://order-svc:8080/")],
            Ok(("http://order-svc:8080", None, false)),
        );
        check(
            &[("CONSOLE_TRACE_URL", "http://jaeger:16686/trace/{trace_id}")],
            Ok((
                "http://127.0.0.1:8080",
                Some("http://jaeger:16686/trace/{trace_id}"),
                false,
            )),
        );
        check(
            &[("CONSOLE_TRACE_URL", "http://jaeger:16686/")],
            Err("CONSOLE_TRACE_URL"),
        );
        check(
            &[("CONSOLE_INSECURE_COOKIE", "true")],
            Ok(("http://127.0.0.1:8080", None, true)),
        );
        check(
            &[("AUTH_JWT_SECRET", "")],
            Err("AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY_FILE"),
        );
    }
}
