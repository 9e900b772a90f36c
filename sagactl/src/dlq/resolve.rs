//! Which services to ask, where they are and as whom, resolved from the arguments and the
//! environment before any request.

use std::fmt;

use contracts::Service;
use reqwest::Url;

use super::{Connection, DlqError, ServiceName};
use crate::Lookup;
use crate::token::{self, Lifetime, TokenArgs, TokenError};

/// The variable of the operator's bearer token.
pub const TOKEN: &str = "SAGACTL_TOKEN";
/// How long a token minted from `AUTH_JWT_SECRET` is valid.
pub const TOKEN_LIFETIME_MINUTES: u16 = 5;

/// A service to ask, and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The service.
    pub service: Service,
    /// Its base URL.
    pub url: Url,
}

impl fmt::Display for Target {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} ({})",
            self.service,
            self.url.as_str().trim_end_matches('/')
        )
    }
}

/// The variable of `service`'s base URL: `ORDER_SVC_URL`, `INVENTORY_SVC_URL`, ….
pub const fn url_variable(service: Service) -> &'static str {
    match service {
        Service::Order => "ORDER_SVC_URL",
        Service::Inventory => "INVENTORY_SVC_URL",
        Service::Payment => "PAYMENT_SVC_URL",
        Service::Notify => "NOTIFY_SVC_URL",
    }
}

/// `service`'s base URL when neither its flag nor its variable gives one: the port compose
/// publishes it on.
pub const fn default_url(service: Service) -> &'static str {
    match service {
        Service::Order => "http://localhost:8080",
        Service::Inventory => "http://localhost:8081",
        Service::Payment => "http://localhost:8082",
        Service::Notify => "http://localhost:8083",
    }
}

/// The flag of `service`'s base URL, and its value.
fn url_flag(service: Service, connection: &Connection) -> (&'static str, Option<&str>) {
    match service {
        Service::Order => ("--order-url", connection.order_url.as_deref()),
        Service::Inventory => ("--inventory-url", connection.inventory_url.as_deref()),
        Service::Payment => ("--payment-url", connection.payment_url.as_deref()),
        Service::Notify => ("--notify-url", connection.notify_url.as_deref()),
    }
}

/// The service whose queue `queue` is (queues are named `<service>.<MessageType>`).
pub fn owner(queue: &str) -> Result<Service, DlqError> {
    Service::ALL
        .iter()
        .copied()
        .find(|service| {
            queue
                .strip_prefix(service.name())
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|message_type| !message_type.is_empty())
        })
        .ok_or_else(|| DlqError::UnknownQueue(queue.to_owned()))
}

/// The services to ask, in the order of [`Service::ALL`], with their URLs: those `named` (all
/// when none is), narrowed to `queue`'s service when a queue is given.
pub fn targets(
    named: &[ServiceName],
    queue: Option<&str>,
    connection: &Connection,
    environment: Lookup<'_>,
) -> Result<Vec<Target>, DlqError> {
    let mut services: Vec<Service> = Service::ALL
        .iter()
        .copied()
        .filter(|service| named.is_empty() || named.iter().any(|name| name.service() == *service))
        .collect();
    if let Some(queue) = queue {
        let owner = owner(queue)?;
        if !services.contains(&owner) {
            return Err(DlqError::QueueOfAnotherService {
                queue: queue.to_owned(),
                owner,
            });
        }
        services = vec![owner];
    }
    services
        .into_iter()
        .map(|service| {
            Ok(Target {
                service,
                url: url_of(service, connection, environment)?,
            })
        })
        .collect()
}

/// `service`'s base URL: its flag, else its variable, else compose's port.
pub(super) fn url_of(
    service: Service,
    connection: &Connection,
    environment: Lookup<'_>,
) -> Result<Url, DlqError> {
    let (flag, given) = url_flag(service, connection);
    let variable = url_variable(service);
    let text = match given {
        Some(url) => url.to_owned(),
        None => environment(variable).unwrap_or_else(|| default_url(service).to_owned()),
    };
    let invalid = |reason: String| DlqError::InvalidUrl {
        flag,
        variable,
        url: text.clone(),
        reason,
    };
    let mut url = Url::parse(text.trim()).map_err(|error| invalid(error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("the scheme is {}, not http", url.scheme())));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(invalid("it has no host".into()));
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// The operator's token: `--token`, else `SAGACTL_TOKEN`, else one minted from
/// `AUTH_JWT_SECRET` as `sagactl token --operator` does, valid for
/// [`TOKEN_LIFETIME_MINUTES`].
pub fn operator_token(
    connection: &Connection,
    environment: Lookup<'_>,
) -> Result<String, DlqError> {
    if let Some(token) = &connection.token {
        return match token.trim() {
            "" => Err(DlqError::Empty("--token")),
            token => Ok(token.to_owned()),
        };
    }
    if let Some(token) = environment(TOKEN) {
        return Ok(token.trim().to_owned());
    }
    let arguments = TokenArgs {
        customer: None,
        operator: true,
        subject: None,
        lifetime: Lifetime::minutes(TOKEN_LIFETIME_MINUTES),
    };
    token::mint(&arguments, environment).map_err(|error| match error {
        TokenError::MissingSecret => DlqError::NoToken,
        error => DlqError::Token(error),
    })
}
