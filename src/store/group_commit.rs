//! Group commit of access-token records: the records of concurrent token
//! requests go to the store together, in one statement and one commit,
//! instead of one commit each.
//!
//! One task owns the writing. A request hands its record over and waits
//! for the commit that contains it, so no response names a token before
//! its record is stored. While a batch commits, the next requests queue up
//! and form the next batch. A lone request is written at once, so there is
//! no timer and no added wait at low load.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{AccessTokenRecord, Store, StoreError};

/// Maximum records per statement. PostgreSQL binds one array per column and
/// SQLite one JSON text, so the limit only bounds a batch's size.
const MAX_BATCH: usize = 256;

/// Requests that may wait for the writer before senders wait for room.
const QUEUE: usize = 4 * MAX_BATCH;

/// The channel on which a request waits for its record's commit.
type Reply = oneshot::Sender<Result<(), StoreError>>;

/// One record waiting for its commit.
struct Pending {
    record: AccessTokenRecord,
    done: Reply,
}

/// Hands access-token records to the writer task; cheap to clone.
#[derive(Clone)]
pub struct AccessTokenWriter {
    queue: mpsc::Sender<Pending>,
}

impl AccessTokenWriter {
    /// Starts the writer task on the current Tokio runtime. It ends when
    /// the last clone of the writer is dropped.
    pub fn spawn(store: Arc<dyn Store>) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(store, pending));
        Self { queue }
    }

    /// Stores `record`, returning once the commit that contains it is done.
    pub async fn insert(&self, record: AccessTokenRecord) -> Result<(), StoreError> {
        let (done, committed) = oneshot::channel();
        self.queue
            .send(Pending { record, done })
            .await
            .map_err(|_| writer_gone())?;
        committed.await.map_err(|_| writer_gone())?
    }
}

/// Takes every record that is waiting, up to [`MAX_BATCH`], writes them
/// in one call and replies to each waiter, until every sender is gone.
async fn write_batches(store: Arc<dyn Store>, mut pending: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (records, waiters): (Vec<_>, Vec<_>) = batch
            .drain(..)
            .map(|waiter| (waiter.record, waiter.done))
            .unzip();
        match store.insert_access_tokens(&records).await {
            Ok(()) => {
                for waiter in waiters {
                    // A request that gave up waiting no longer listens.
                    waiter.send(Ok(())).ok();
                }
            }
            Err(error) if error.is_unavailable() => fail_waiting(waiters, &mut pending, error),
            Err(error) => answer_failed_batch(store.as_ref(), records, waiters, error).await,
        }
    }
}

/// Fails the batch and every request that queued while it was tried with
/// the unavailable store's error. Each batch can wait the store's whole
/// acquire timeout, so trying the queued requests in turn would make the
/// last of them wait that long once per batch ahead of it.
fn fail_waiting(mut waiters: Vec<Reply>, pending: &mut mpsc::Receiver<Pending>, error: StoreError) {
    while let Ok(queued) = pending.try_recv() {
        waiters.push(queued.done);
    }
    let message = error.to_string();
    let mut first = Some(error);
    for waiter in waiters {
        let error = first.take().unwrap_or_else(|| unavailable_copy(&message));
        waiter.send(Err(error)).ok();
    }
}

/// Replies to the waiters of a batch that failed as a whole, so none of it
/// is stored. One record may be at fault (a duplicate `jti`, say), so
/// each is retried alone and gets its own result. A batch of one already
/// has its own result.
async fn answer_failed_batch(
    store: &dyn Store,
    records: Vec<AccessTokenRecord>,
    mut waiters: Vec<Reply>,
    error: StoreError,
) {
    if waiters.len() == 1 {
        if let Some(waiter) = waiters.pop() {
            waiter.send(Err(error)).ok();
        }
        return;
    }
    for (record, waiter) in records.iter().zip(waiters) {
        waiter.send(store.insert_access_token(record).await).ok();
    }
}

/// Builds the error for the other waiters of a batch that the unavailable
/// store rejected, because a [`StoreError`] contains a `sqlx::Error`, which
/// cannot be cloned.
fn unavailable_copy(message: &str) -> StoreError {
    StoreError::Unavailable(sqlx::Error::Protocol(format!(
        "a grouped write failed: {message}"
    )))
}

/// Builds the error for a writer task that is gone, which happens only when
/// it panicked.
fn writer_gone() -> StoreError {
    StoreError::Unavailable(sqlx::Error::WorkerCrashed)
}
