//! Voicemail messages: a box's recordings (WAV bytes) with their metadata (KAZOO's message
//! fields: caller id, call id, time, length), and [`MessageSpool`], which keeps a message on the
//! node's disk while the store cannot take it and writes it when the store returns.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::files_store::FilesStore;
use crate::{Store, StoreError};

/// One voicemail message.
#[derive(Debug, Clone)]
pub struct Message {
    pub account_id: String,
    pub box_id: String,
    /// Unique in its box (`<unix seconds>-<random hex>`).
    pub message_id: String,
    /// Its fields as JSON: `message_id`, `box_id`, `call_id`, `caller_id_name`,
    /// `caller_id_number`, `timestamp`, `length_ms`, `media`.
    pub metadata: Value,
    /// The recording: a WAV file.
    pub audio: Arc<[u8]>,
}

/// Where a message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// Into the store.
    Stored,
    /// Onto the node's disk at this path: the store could not take it; it is written there
    /// when the store returns.
    Spooled(PathBuf),
}

/// Messages on their way into a store: written straight in when it can take them, else kept
/// in a folder of the node's own (laid out as a data directory) and moved in by
/// [`MessageSpool::drain`], which [`MessageSpool::keep_draining`] runs every second.
pub struct MessageSpool {
    store: Arc<dyn Store>,
    spool: FilesStore,
}

impl MessageSpool {
    /// Messages for `store`, kept in `dir` while it is away.
    pub fn new(store: Arc<dyn Store>, dir: PathBuf) -> Self {
        MessageSpool {
            store,
            spool: FilesStore::new(&dir),
        }
    }

    /// Stores `message`, or spools it when the store cannot be reached. Only a message that
    /// neither the store nor the node's disk took is an error.
    pub async fn put(&self, message: &Message) -> Result<Kept, StoreError> {
        match self.store.put_message(message).await {
            Ok(()) => Ok(Kept::Stored),
            Err(StoreError::Unavailable { store, reason }) => {
                let place = self.spool.put_message_files(message)?;
                tracing::warn!(
                    "voicemail: the store ({store}) is unreachable ({reason}); message {} kept \
                     at {} until it returns",
                    message.message_id,
                    place.display()
                );
                Ok(Kept::Spooled(place))
            }
            Err(other) => Err(other),
        }
    }

    /// Moves the spooled messages into the store; returns how many. Stops at the first the
    /// store cannot take (it is tried again next time).
    pub async fn drain(&self) -> usize {
        let waiting = match self.spool.every_message() {
            Ok(waiting) => waiting,
            Err(e) => {
                tracing::error!("voicemail: cannot read the spool: {e}");
                return 0;
            }
        };
        let mut moved = 0;
        for message in waiting {
            match self.store.put_message(&message).await {
                Ok(()) => {
                    if let Err(e) = self.spool.remove_message(
                        &message.account_id,
                        &message.box_id,
                        &message.message_id,
                    ) {
                        tracing::error!("voicemail: stored a spooled message but {e}");
                    }
                    moved += 1;
                }
                Err(StoreError::Unavailable { .. }) => break,
                Err(e) => {
                    tracing::error!(
                        "voicemail: the store refuses spooled message {} ({e}); it stays in the \
                         spool",
                        message.message_id
                    );
                }
            }
        }
        if moved > 0 {
            tracing::info!("voicemail: {moved} spooled messages stored");
        }
        moved
    }

    /// Drains the spool now and every `every` from now on, until the task is dropped.
    pub fn keep_draining(self: Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                self.drain().await;
                tokio::time::sleep(every).await;
            }
        })
    }
}
