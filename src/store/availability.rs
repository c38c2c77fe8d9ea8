//! Tells a database that cannot serve requests right now (stopped,
//! unreachable, out of connections, out of disk, read-only) apart from a
//! query that failed on its own. Handlers respond to the first with 503, so
//! that clients and load balancers retry elsewhere or later, and the
//! second with 500.

use sqlx::error::DatabaseError;
use sqlx::postgres::PgDatabaseError;
use sqlx::sqlite::SqliteError;

use super::StoreError;

/// SQLSTATE values of PostgreSQL errors that mean the server cannot work
/// for now, besides the whole classes in [`UNAVAILABLE_PG_CLASSES`]:
/// `admin_shutdown`, `crash_shutdown`, `cannot_connect_now` and
/// `read_only_sql_transaction` (a standby after a failover).
const UNAVAILABLE_PG_STATES: [&str; 4] = ["57P01", "57P02", "57P03", "25006"];

/// SQLSTATE classes of PostgreSQL errors that mean the server cannot work
/// for now: `08` connection exception and `53` insufficient resources
/// (disk full, out of memory, too many connections).
const UNAVAILABLE_PG_CLASSES: [&str; 2] = ["08", "53"];

/// SQLite primary result codes that mean the database file cannot be
/// written or read for now: `SQLITE_BUSY` (5), `SQLITE_LOCKED` (6),
/// `SQLITE_READONLY` (8), `SQLITE_IOERR` (10), `SQLITE_FULL` (13) and
/// `SQLITE_CANTOPEN` (14).
const UNAVAILABLE_SQLITE_CODES: [i32; 6] = [5, 6, 8, 10, 13, 14];

impl StoreError {
    /// Returns whether the database could not serve the request at all,
    /// as opposed to a query that failed on its own.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unreachable { .. }
            | StoreError::Unavailable(_)
            | StoreError::SqliteFile { .. } => true,
            StoreError::Database(error) => is_unavailable(error),
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if is_unavailable(&error) {
            StoreError::Unavailable(error)
        } else {
            StoreError::Database(error)
        }
    }
}

/// Returns whether `error` means the database cannot serve requests now.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database) => is_unavailable_database(database.as_ref()),
        _ => false,
    }
}

fn is_unavailable_database(error: &dyn DatabaseError) -> bool {
    if let Some(postgres) = error.try_downcast_ref::<PgDatabaseError>() {
        let state = postgres.code();
        return UNAVAILABLE_PG_STATES.contains(&state)
            || UNAVAILABLE_PG_CLASSES
                .iter()
                .any(|class| state.starts_with(class));
    }
    if error.try_downcast_ref::<SqliteError>().is_some() {
        let primary = error
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .map(|code| code & 0xff);
        return primary.is_some_and(|code| UNAVAILABLE_SQLITE_CODES.contains(&code));
    }
    false
}

/// Returns whether `error` or one of its causes is a [`StoreError`] or
/// sqlx error that means the database cannot serve requests now.
pub fn caused_by_unavailable_store(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(store) = error.downcast_ref::<StoreError>() {
            if store.is_unavailable() {
                return true;
            }
        }
        if let Some(sqlx) = error.downcast_ref::<sqlx::Error>() {
            if is_unavailable(sqlx) {
                return true;
            }
        }
        current = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailable() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for error in [
            sqlx::Error::Io(refused),
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
        ] {
            assert!(is_unavailable(&error), "{error:?}");
            assert!(StoreError::from(error).is_unavailable());
        }
    }

    #[test]
    fn query_failures_are_not_unavailable() {
        for error in [
            sqlx::Error::RowNotFound,
            sqlx::Error::ColumnNotFound("x".into()),
            sqlx::Error::Protocol("unexpected message".into()),
        ] {
            assert!(!is_unavailable(&error), "{error:?}");
            assert!(!StoreError::from(error).is_unavailable());
        }
    }

    #[test]
    fn unavailable_cause_is_found_in_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("lookup failed")]
        struct Wrapper(#[source] StoreError);

        let down = Wrapper(StoreError::from(sqlx::Error::PoolTimedOut));
        assert!(caused_by_unavailable_store(&down));
        let other = Wrapper(StoreError::NotFound {
            what: "client",
            id: "c1".to_owned(),
        });
        assert!(!caused_by_unavailable_store(&other));
    }
}
