//! Who may send what: the check every consumed message passes before any handler sees it.
//!
//! RabbitMQ refuses a publish whose `user_id` property is not the connection's user, but lets
//! one without `user_id` through unchecked, and anyone who can reach the broker can publish any
//! type name. So a consumer accepts a message only if its `user_id` is the broker user of the
//! service that produces its type ([`contracts::ProducerUsers`]); everything else, a missing
//! `user_id` included, is dead-lettered with the reason.
//!
//! A retry passes through the consumer's own hands: it republishes the message under its own
//! `user_id` (it cannot publish under anyone else's) and records the sender it validated in
//! [`HEADER_ORIGINAL_USER_ID`]. Such a message is accepted back only when it carries the
//! consumer's own `user_id` *and* names the type's producer there: only this consumer's
//! credentials can have written both.
//!
//! [`HEADER_ORIGINAL_USER_ID`]: contracts::envelope::HEADER_ORIGINAL_USER_ID

use contracts::{MessageType, ProducerUsers};

/// Checks a message's sender. Returns the validated original sender, or why the message must
/// be dead-lettered.
///
/// `user_id` is the delivery's AMQP `user_id`, `original_user_id` its
/// [`contracts::envelope::HEADER_ORIGINAL_USER_ID`] header, `own_user` the consumer's broker user.
pub fn authenticate_sender(
    producers: &ProducerUsers,
    own_user: &str,
    message_type: MessageType,
    user_id: Option<&str>,
    original_user_id: Option<&str>,
) -> Result<String, String> {
    let expected = producers.expected_sender(message_type);
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

    fn check(user_id: Option<&str>, original: Option<&str>, expected: Result<&str, &str>) {
        let producers = ProducerUsers::default();
        let got = authenticate_sender(
            &producers,
            "order-svc",
            MessageType::PaymentSucceeded,
            user_id,
            original,
        );
        match expected {
            Ok(sender) => assert_eq!(got, Ok(sender.to_owned()), "{user_id:?} {original:?}"),
            Err(fragment) => {
                let reason = got.expect_err("refused");
                assert!(reason.contains(fragment), "{reason}");
            }
        }
    }

    /// `user_id`, `x-original-user-id`, and the validated sender or a fragment of the reason.
    type Case<'a> = (Option<&'a str>, Option<&'a str>, Result<&'a str, &'a str>);

    #[test]
    fn only_the_producer_or_our_own_retry_of_it_is_accepted() {
        let cases: &[Case<'_>] = &[
            (Some("payment-svc"), None, Ok("payment-svc")),
            // The producer's own header is irrelevant: the property is what the broker checked.
            (
                Some("payment-svc"),
                Some("inventory-svc"),
                Ok("payment-svc"),
            ),
            (None, None, Err("has no user_id")),
            (None, Some("payment-svc"), Err("has no user_id")),
            (
                Some("inventory-svc"),
                None,
                Err("not by user_id inventory-svc"),
            ),
            (
                Some("guest"),
                Some("payment-svc"),
                Err("not by user_id guest"),
            ),
            // Our own retry of a validated message.
            (Some("order-svc"), Some("payment-svc"), Ok("payment-svc")),
            // Our own user cannot vouch for another sender than the producer.
            (
                Some("order-svc"),
                Some("inventory-svc"),
                Err("not by user_id order-svc"),
            ),
            (Some("order-svc"), None, Err("not by user_id order-svc")),
        ];
        for &(user_id, original, expected) in cases {
            check(user_id, original, expected);
        }
    }
}
