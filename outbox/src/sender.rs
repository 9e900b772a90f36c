//! Who may send what: the check every consumed message passes before any handler sees it.
//!
//! RabbitMQ refuses a publish whose `user_id` property is not the connection's user, but lets
//! one without `user_id` through unchecked, and anyone who can reach the broker can publish any
//! type name. So a consumer accepts a message only if its `user_id` is the broker user of the
//! one producer of its type ([`Producers`]); everything else, a missing `user_id` or a type
//! without a known producer included, is dead-lettered with the reason.
//!
//! A retry passes through the consumer's own hands: it republishes the message under its own
//! `user_id` (it cannot publish under anyone else's) and records the sender it validated in
//! [`ORIGINAL_USER_ID`]. Such a message is accepted back only when it carries the consumer's
//! own `user_id` *and* names the type's producer there: only this consumer's credentials can
//! have written both.
//!
//! [`ORIGINAL_USER_ID`]: crate::headers::ORIGINAL_USER_ID

use std::collections::BTreeMap;

/// The only broker user allowed to send each message type, by type name. Types it does not
/// list have no allowed sender: their messages are dead-lettered. Empty by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Producers {
    users: BTreeMap<String, String>,
}

impl Producers {
    /// No producers: every message is refused.
    pub fn new() -> Producers {
        Producers::default()
    }

    /// These producers, with `user` as the one sender of `message_type` (replacing any other).
    pub fn with(mut self, message_type: impl Into<String>, user: impl Into<String>) -> Producers {
        self.insert(message_type, user);
        self
    }

    /// Makes `user` the one sender of `message_type` (replacing any other).
    pub fn insert(&mut self, message_type: impl Into<String>, user: impl Into<String>) {
        self.users.insert(message_type.into(), user.into());
    }

    /// The only broker user allowed to send messages of `message_type`, if the type is known.
    pub fn expected_sender(&self, message_type: &str) -> Option<&str> {
        self.users.get(message_type).map(String::as_str)
    }

    /// Every known type and its sender, by type name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.users
            .iter()
            .map(|(message_type, user)| (message_type.as_str(), user.as_str()))
    }
}

impl<T: Into<String>, U: Into<String>> FromIterator<(T, U)> for Producers {
    fn from_iter<I: IntoIterator<Item = (T, U)>>(pairs: I) -> Producers {
        Producers {
            users: pairs
                .into_iter()
                .map(|(message_type, user)| (message_type.into(), user.into()))
                .collect(),
        }
    }
}

/// Checks a message's sender. Returns the validated original sender, or why the message must
/// be dead-lettered.
///
/// `user_id` is the delivery's AMQP `user_id`, `original_user_id` its
/// [`crate::headers::ORIGINAL_USER_ID`] header, `own_user` the consumer's broker user.
pub fn authenticate_sender(
    producers: &Producers,
    own_user: &str,
    message_type: &str,
    user_id: Option<&str>,
    original_user_id: Option<&str>,
) -> Result<String, String> {
    let Some(expected) = producers.expected_sender(message_type) else {
        return Err(format!("{message_type} has no known producer"));
    };
    let Some(user_id) = user_id else {
        return Err(format!(
            "{message_type} has no user_id; only {expected} may send it"
        ));
    };
    if user_id == expected {
        return Ok(user_id.to_owned());
    }
    if user_id == own_user && original_user_id == Some(expected) {
        return Ok(expected.to_owned());
    }
    Err(format!(
        "{message_type} may be sent by {expected} only, not by user_id {user_id}"
    ))
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn check(
        message_type: &str,
        user_id: Option<&str>,
        original: Option<&str>,
        expected: Result<&str, &str>,
    ) {
        let producers = Producers::new()
            .with("PaymentSucceeded", "payment-svc")
            .with("StockReserved", "inventory-svc");
        let got = authenticate_sender(&producers, "order-svc", message_type, user_id, original);
        match expected {
            Ok(sender) => assert_eq!(got, Ok(sender.to_owned()), "{user_id:?} {original:?}"),
            Err(fragment) => {
                let reason = got.expect_err("refused");
                assert!(reason.contains(fragment), "{reason}");
            }
        }
    }

    /// Type, `user_id`, `x-original-user-id`, and the validated sender or a fragment of the
    /// reason.
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Result<&'a str, &'a str>,
    );

    #[test]
    fn only_the_producer_or_our_own_retry_of_it_is_accepted() {
        let paid = "PaymentSucceeded";
        let cases: &[Case<'_>] = &[
            (paid, Some("payment-svc"), None, Ok("payment-svc")),
            // The producer's own header is irrelevant: the property is what the broker checked.
            (
                paid,
                Some("payment-svc"),
                Some("inventory-svc"),
                Ok("payment-svc"),
            ),
            (paid, None, None, Err("has no user_id")),
            (paid, None, Some("payment-svc"), Err("has no user_id")),
            (
                paid,
                Some("inventory-svc"),
                None,
                Err("not by user_id inventory-svc"),
            ),
            (
                paid,
                Some("guest"),
                Some("payment-svc"),
                Err("not by user_id guest"),
            ),
            // Our own retry of a validated message.
            (
                paid,
                Some("order-svc"),
                Some("payment-svc"),
                Ok("payment-svc"),
            ),
            // Our own user cannot vouch for another sender than the producer.
            (
                paid,
                Some("order-svc"),
                Some("inventory-svc"),
                Err("not by user_id order-svc"),
            ),
            (
                paid,
                Some("order-svc"),
                None,
                Err("not by user_id order-svc"),
            ),
            // Each type has its own producer.
            (
                "StockReserved",
                Some("inventory-svc"),
                None,
                Ok("inventory-svc"),
            ),
            // A type nobody produces is refused, whoever sends it.
            (
                "Unheard",
                Some("payment-svc"),
                None,
                Err("Unheard has no known producer"),
            ),
        ];
        for &(message_type, user_id, original, expected) in cases {
            check(message_type, user_id, original, expected);
        }
    }
}
