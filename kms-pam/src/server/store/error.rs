//! Why a store operation failed ([`StoreError`]; callers outside the server see it as
//! [`StoreFailure`](crate::server::StoreFailure)).

/// Why a store operation failed.
///
/// `NotFound`, `Conflict` and `Invalid` are final answers about the request; `Unavailable` means
/// the store could not answer (retry later); `Corrupt` means stored data is unreadable (a sealed
/// value that does not open, an unknown status), which needs an operator. Messages never hold a
/// secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum StoreError {
    /// No such row.
    #[error("{0} not found")]
    NotFound(String),
    /// A unique name is taken, or the row changed under the caller (a spent token).
    #[error("{0}")]
    Conflict(String),
    /// The request cannot be stored as given.
    #[error("{0}")]
    Invalid(String),
    /// The database or a file it needs cannot be reached.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data cannot be read back.
    #[error("store data corrupt: {0}")]
    Corrupt(String),
}
