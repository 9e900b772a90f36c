//! Least privilege on the broker: a RabbitMQ definitions document (users, permissions, topic
//! permissions, exchanges, queues, bindings) generated from the [`Topology`] and one [`Account`]
//! per service: the message types it produces and the queues it consumes.
//!
//! Load it at boot (`load_definitions` in `rabbitmq.conf`, as compose does) or import it into a
//! running broker (`rabbitmqctl import_definitions`, as `sagactl broker provision` and the tests
//! do). Once it is loaded, each service's user may:
//!
//! - **configure** nothing: the topology is the provisioning's, and services only check
//!   passively that their queues exist ([`crate::Broker::connect`]);
//! - **write** to the topology's exchange (and there, by topic permission, only the routing
//!   keys of the types it produces), and to the retry and dead-letter exchanges its consumer
//!   republishes failures into. An account that produces nothing may not write to the exchange
//!   at all;
//! - **read** its own queues and their dead-letter queues only.
//!
//! The retry and dead-letter exchanges are shared: any service user can put a message into
//! another service's retry path or dead-letter queue. What it cannot do is make the message
//! acceptable there: consumers accept only their types' producers ([`crate::sender`]).

use serde_json::{Value, json};

use crate::topology::{Argument, DEAD_LETTER_EXCHANGE, Topology, dead_letter_queue};

/// A broker user and its password, for the definitions document (which stores only a salted
/// hash).
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
}

/// One service's broker account: its user, what it may publish, what it may read.
#[derive(Clone, Debug)]
pub struct Account {
    /// The user and its password.
    pub credentials: Credentials,
    /// The message types it produces (and alone may send): the routing keys it may write.
    pub produces: Vec<String>,
    /// The queues it consumes: the only ones it may read.
    pub queues: Vec<String>,
}

/// What to provision.
#[derive(Clone, Debug)]
pub struct Provisioning {
    /// The vhost (`/` by default).
    pub vhost: String,
    /// The service accounts, in the order they appear in the document.
    pub accounts: Vec<Account>,
    /// An administrator (tag `administrator`, every right on the vhost), if one is to be created.
    pub administrator: Option<Credentials>,
    /// The exchange, the routes, the retry delays and the delivery limit, as every service
    /// declares them.
    pub topology: Topology,
    /// Where each password's salt comes from: random for real deployments, fixed for a
    /// checked-in development file that must regenerate byte for byte.
    pub salt: Salt,
}

/// The source of password salts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Salt {
    /// Four random bytes per user.
    Random,
    /// Four bytes derived from the user name (development files only: equal passwords of
    /// equal users hash equally).
    FromUserName,
}

impl Provisioning {
    /// The RabbitMQ definitions document.
    pub fn definitions(&self) -> Value {
        let vhost = self.vhost.as_str();
        let mut users = Vec::new();
        let mut permissions = Vec::new();
        let mut topic_permissions = Vec::new();
        if let Some(admin) = &self.administrator {
            users.push(user(admin, "administrator", self.salt));
            permissions.push(json!({
                "user": admin.user, "vhost": vhost,
                "configure": ".*", "write": ".*", "read": ".*",
            }));
        }
        let exchange = self.topology.exchange.as_str();
        for account in &self.accounts {
            let credentials = &account.credentials;
            users.push(user(credentials, "", self.salt));
            let mut writable = vec![
                retry_exchanges_pattern(),
                regex_escape(DEAD_LETTER_EXCHANGE),
            ];
            if !account.produces.is_empty() {
                writable.insert(0, regex_escape(exchange));
            }
            // Its queues, and their dead-letter queues (which an operator lists, redrives and
            // discards through the service).
            let readable: Vec<String> = account
                .queues
                .iter()
                .flat_map(|queue| [regex_escape(queue), regex_escape(&dead_letter_queue(queue))])
                .collect();
            permissions.push(json!({
                "user": credentials.user, "vhost": vhost,
                "configure": "^$",
                "write": one_of(&writable),
                "read": one_of(&readable),
            }));
            let routing_keys: Vec<String> = account
                .produces
                .iter()
                .map(|name| regex_escape(name))
                .collect();
            topic_permissions.push(json!({
                "user": credentials.user, "vhost": vhost, "exchange": exchange,
                "write": one_of(&routing_keys),
                "read": "^$",
            }));
        }
        json!({
            "rabbit_version": "3.10.0",
            "users": users,
            "vhosts": [{ "name": vhost }],
            "permissions": permissions,
            "topic_permissions": topic_permissions,
            "exchanges": self.exchanges(),
            "queues": self.queues(),
            "bindings": self.bindings(),
            "parameters": [],
            "policies": [],
            "global_parameters": [],
        })
    }

    fn exchanges(&self) -> Vec<Value> {
        self.topology
            .exchanges()
            .into_iter()
            .map(|exchange| {
                json!({
                    "name": exchange.name, "vhost": self.vhost, "type": exchange.kind.name(),
                    "durable": true, "auto_delete": false, "internal": false, "arguments": {},
                })
            })
            .collect()
    }

    fn queues(&self) -> Vec<Value> {
        self.topology
            .queues()
            .into_iter()
            .map(|queue| {
                let arguments: serde_json::Map<String, Value> = queue
                    .arguments
                    .iter()
                    .map(|(name, value)| {
                        let value = match value {
                            Argument::Text(text) => json!(text),
                            Argument::Integer(number) => json!(number),
                        };
                        ((*name).to_owned(), value)
                    })
                    .collect();
                json!({
                    "name": queue.name, "vhost": self.vhost,
                    "durable": true, "auto_delete": false, "arguments": arguments,
                })
            })
            .collect()
    }

    fn bindings(&self) -> Vec<Value> {
        self.topology
            .bindings()
            .into_iter()
            .map(|binding| {
                json!({
                    "source": binding.exchange, "vhost": self.vhost, "destination": binding.queue,
                    "destination_type": "queue", "routing_key": binding.routing_key, "arguments": {},
                })
            })
            .collect()
    }
}

fn user(credentials: &Credentials, tags: &str, salt: Salt) -> Value {
    let salt = match salt {
        Salt::Random => {
            let random = uuid::Uuid::new_v4();
            let bytes = random.as_bytes();
            [bytes[0], bytes[1], bytes[2], bytes[3]]
        }
        Salt::FromUserName => {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(credentials.user.as_bytes());
            [digest[0], digest[1], digest[2], digest[3]]
        }
    };
    json!({
        "name": credentials.user,
        "password_hash": password_hash(&credentials.password, salt),
        "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": tags,
        "limits": {},
    })
}

/// RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt ‖ SHA-256(salt ‖ password)).
pub fn password_hash(password: &str, salt: [u8; 4]) -> String {
    use base64::Engine;
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(salt);
    hasher.update(password.as_bytes());
    let mut salted = salt.to_vec();
    salted.extend_from_slice(&hasher.finalize());
    base64::engine::general_purpose::STANDARD.encode(salted)
}

fn retry_exchanges_pattern() -> String {
    r"saga\.retry\..+".to_owned()
}

/// `^(a|b|c)$`, or `^$` (matches no resource) for an empty list.
fn one_of(alternatives: &[String]) -> String {
    match alternatives.is_empty() {
        true => "^$".to_owned(),
        false => format!("^({})$", alternatives.join("|")),
    }
}

fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if r"\.+*?()|[]{}^$".contains(character) {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_hash_is_rabbitmqs() {
        // rabbitmqctl hash_password with salt 0x908DC60A, as documented by RabbitMQ's
        // "Credentials and Passwords" guide for the password `test12`.
        assert_eq!(
            password_hash("test12", [0x90, 0x8d, 0xc6, 0x0a]),
            "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
        );
    }

    #[test]
    fn patterns_are_anchored_alternatives() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "^$"),
            (&["saga.events"], r"^(saga\.events)$"),
            (&["a", "b.c"], r"^(a|b\.c)$"),
        ];
        for &(items, expected) in cases {
            let escaped: Vec<String> = items.iter().map(|item| regex_escape(item)).collect();
            assert_eq!(one_of(&escaped), expected, "{items:?}");
        }
    }
}
