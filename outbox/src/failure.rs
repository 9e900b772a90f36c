//! Whose fault a failure is: the infrastructure's (the database or the broker could not do their
//! part) or the message's own (its handler refused it, or it fails whenever it is handled).
//!
//! The distinction decides what a failure costs the message. An infrastructure failure says
//! nothing about the message: the consumer pauses and handles the same deliveries again, with
//! backoff, for as long as it takes, and the message keeps every attempt it had. A failure of
//! the message's own spends one of its attempts and moves it toward the dead-letter queue.
//! Treating a database outage as the message's fault would dead-letter every message that
//! arrived during the outage (and the saga would cancel their orders); treating a bad message
//! as an outage would stop its lane for ever.
//!
//! ```
//! use outbox::failure::{Blame, blame_database};
//! use sea_orm::{ConnAcquireErr, DbErr};
//!
//! // A pool that cannot hand out a connection in time is the infrastructure's problem.
//! let timed_out = DbErr::ConnectionAcquire(ConnAcquireErr::Timeout);
//! assert!(matches!(blame_database(&timed_out), Blame::Infrastructure(_)));
//! // A value the code could not read is the message's.
//! let unreadable = DbErr::Type("amount is not a number".into());
//! assert!(matches!(blame_database(&unreadable), Blame::Message(_)));
//! ```

use std::ops::Deref;

use sea_orm::sqlx;
use sea_orm::{DbErr, RuntimeErr};

/// Who a failure is attributed to, with the reason to log or record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blame {
    /// The database or the broker failed; the message is not at fault.
    Infrastructure(String),
    /// The message fails on its own (or the code fails on this message).
    Message(String),
}

/// SQLSTATE classes and codes that say the database could not do its part, whatever the
/// message: connection exceptions (08), insufficient resources (53), operator intervention
/// such as `pg_terminate_backend` or a statement timeout (57), system errors (58), invalid
/// authorization (28: a password rotated under a running service), the database missing (3D),
/// and access or schema errors (42: a deployment that is not what the code expects fails every
/// message alike, so blaming each message would dead-letter them all).
const INFRASTRUCTURE_CLASSES: &[&str] = &["08", "28", "3D", "42", "53", "57", "58"];

/// Individual codes of other classes that are contention or timeouts, not the message:
/// serialization failures and deadlocks (resolve on a retry), a lock not available, the
/// `idle_in_transaction_session_timeout`, an object in use.
const INFRASTRUCTURE_CODES: &[&str] = &["40001", "40P01", "55P03", "25P03", "55006"];

/// Blames a database error: [`Blame::Infrastructure`] for connection, pool, timeout,
/// contention, resource and deployment failures; [`Blame::Message`] for everything else
/// (constraint violations, data exceptions, values that do not decode).
pub fn blame_database(error: &DbErr) -> Blame {
    let reason = format!("database: {error}");
    match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Blame::Infrastructure(reason),
        DbErr::Exec(RuntimeErr::SqlxError(cause)) | DbErr::Query(RuntimeErr::SqlxError(cause)) => {
            match is_infrastructure(cause.deref()) {
                true => Blame::Infrastructure(reason),
                false => Blame::Message(reason),
            }
        }
        _ => Blame::Message(reason),
    }
}

/// Whether sqlx's error is the infrastructure's.
fn is_infrastructure(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => {
            let code = database.code().unwrap_or_default();
            is_infrastructure_sqlstate(&code)
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

/// Whether a SQLSTATE code says the database, not the message, failed.
pub fn is_infrastructure_sqlstate(code: &str) -> bool {
    INFRASTRUCTURE_CODES.contains(&code)
        || code
            .get(..2)
            .is_some_and(|class| INFRASTRUCTURE_CLASSES.contains(&class))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_blamed_by_class_and_code() {
        let cases = [
            ("08006", true, "connection failure"),
            ("08P01", true, "protocol violation"),
            ("57P01", true, "terminated by pg_terminate_backend"),
            ("57014", true, "statement timeout"),
            ("53300", true, "too many connections"),
            ("40001", true, "serialization failure"),
            ("40P01", true, "deadlock"),
            ("55P03", true, "lock not available"),
            ("25P03", true, "idle in transaction timeout"),
            ("42501", true, "permission denied"),
            ("42P01", true, "table missing"),
            ("3D000", true, "database missing"),
            ("28P01", true, "password rejected"),
            ("23505", false, "unique violation"),
            ("23514", false, "check violation"),
            ("22003", false, "numeric value out of range"),
            ("P0001", false, "raised by a function"),
            ("", false, "no code"),
        ];
        for (code, infrastructure, what) in cases {
            assert_eq!(
                is_infrastructure_sqlstate(code),
                infrastructure,
                "{code} ({what})"
            );
        }
    }

    #[test]
    fn errors_without_a_server_are_blamed_by_kind() {
        let cases = [
            (
                DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout),
                true,
            ),
            (DbErr::Conn(RuntimeErr::Internal("refused".into())), true),
            (
                DbErr::Exec(RuntimeErr::SqlxError(std::sync::Arc::new(
                    sqlx::Error::PoolTimedOut,
                ))),
                true,
            ),
            (
                DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(sqlx::Error::Io(
                    std::io::Error::from(std::io::ErrorKind::ConnectionReset),
                )))),
                true,
            ),
            (
                DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(
                    sqlx::Error::RowNotFound,
                ))),
                false,
            ),
            (DbErr::Type("not a number".into()), false),
            (DbErr::RecordNotFound("order".into()), false),
        ];
        for (error, infrastructure) in cases {
            let blamed = matches!(blame_database(&error), Blame::Infrastructure(_));
            assert_eq!(blamed, infrastructure, "{error}");
        }
    }
}
