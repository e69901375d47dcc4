//! PostgreSQL's errors sorted by their SQLSTATE into those worth trying
//! again and those that will fail the same way every time.
//!
//! A database that is away, restarting, overloaded or that chose this
//! transaction to break a deadlock answers again later: such an error is
//! [`StoreError::Unavailable`], which the writer retries and the API
//! answers 503 with `Retry-After`. A constraint the rows break, a privilege
//! the role lacks, a column that is not there stay so until someone acts:
//! such an error is [`StoreError::Rejected`], carrying its SQLSTATE, which
//! the writer sets aside instead of retrying forever and the API answers
//! 500.

use tokio_postgres::error::SqlState;
use udaconnect_domain::StoreError;

/// The SQLSTATE classes (the code's first two characters) worth trying
/// again: connection exception, transaction rollback (a serialization
/// failure, a deadlock), insufficient resources, operator intervention (an
/// administrator's shutdown, a server starting up, a statement cancelled
/// at its timeout) and system error.
const TRANSIENT_CLASSES: [&str; 5] = ["08", "40", "53", "57", "58"];

/// Whether an error with SQLSTATE `code` may not happen again: its class
/// is transient (see [`TRANSIENT_CLASSES`]), but for a constraint found
/// broken at commit (40002, an integrity violation); or it is a lock not
/// available now (55P03), or a write refused by a server in read-only
/// mode (25006: a primary demoted, or a standby reached before the address
/// moved to the new primary, after a failover).
pub fn is_transient(code: &SqlState) -> bool {
    if *code == SqlState::T_R_INTEGRITY_CONSTRAINT_VIOLATION {
        return false;
    }
    *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::READ_ONLY_SQL_TRANSACTION
        || TRANSIENT_CLASSES
            .iter()
            .any(|class| code.code().starts_with(class))
}

/// `err` as a [`StoreError`]: [`StoreError::Rejected`] with its code and
/// message if the server answered with a SQLSTATE that is not transient;
/// otherwise [`StoreError::Unavailable`] with `describe`'s text, as for an
/// error without a SQLSTATE (the connection lost or closed, I/O).
pub fn classify(
    err: &tokio_postgres::Error,
    describe: impl FnOnce(&tokio_postgres::Error) -> String,
) -> StoreError {
    match err.as_db_error() {
        Some(db) if !is_transient(db.code()) => StoreError::Rejected {
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
        },
        _ => StoreError::Unavailable(describe(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_sorted_by_class_with_the_named_exceptions() {
        let transient = [
            ("08006", "connection failure"),
            ("08001", "cannot establish a connection"),
            ("40001", "serialization failure"),
            ("40P01", "deadlock detected"),
            ("53300", "too many connections"),
            ("53100", "disk full"),
            ("57P01", "admin shutdown"),
            ("57P03", "cannot connect now (starting up)"),
            ("57014", "query canceled (the statement timeout)"),
            ("58030", "I/O error"),
            ("55P03", "lock not available"),
            ("25006", "read-only transaction (a failover)"),
        ];
        let permanent = [
            ("22003", "numeric value out of range"),
            ("22P02", "invalid text representation"),
            ("23514", "check violation"),
            ("23502", "not-null violation"),
            ("23505", "unique violation"),
            ("40002", "integrity violation at commit"),
            ("42501", "insufficient privilege"),
            ("42703", "undefined column"),
            ("42P01", "undefined table"),
            ("28P01", "invalid password"),
            ("28000", "invalid authorization"),
            ("3D000", "invalid catalog name"),
            ("55006", "object in use"),
            ("0A000", "feature not supported"),
            ("P0001", "raise exception"),
            ("XX000", "internal error"),
        ];
        for (code, what) in transient {
            assert!(is_transient(&SqlState::from_code(code)), "{code} {what}");
        }
        for (code, what) in permanent {
            assert!(!is_transient(&SqlState::from_code(code)), "{code} {what}");
        }
    }
}
