//! The publish protocol: how a data file appears under its final name, whole, exactly once.
//!
//! **`rename`** (default, the documented pattern): upload the file under a `_`-prefixed temp name in
//! the table folder (Fabric ignores it), then rename it to its final name with a DFS rename that
//! refuses to overwrite (`If-None-Match: *`).
//!
//! **`put`**: upload straight to the final name with a create-only Blob `Put Blob`
//! (`If-None-Match: *`), which also makes the blob appear whole or not at all. Not the documented
//! pattern, but what a Blob-only endpoint (Azurite) offers.
//!
//! When the outcome is unknown (a timeout, a 5xx, a lost response) or the store says the target
//! exists or the source is gone, the file is verified before anything else happens:
//!
//! | temp file | final file | conclusion |
//! |---|---|---|
//! | any | holds exactly our bytes | published (the lost response succeeded) |
//! | any | holds other bytes | another writer took the number: [`SinkError::Conflict`], stop |
//! | present | absent | not published: retry the rename later |
//! | absent | absent | the temp vanished: upload again, then rename |
//!
//! Retrying always reuses the same number, so a failed publish never leaves a gap.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::SinkError;
use crate::store::{LandingStore, PutMode, StoreError, StoreErrorKind};

/// How files are published.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    /// Upload under a temp name, then a DFS rename that refuses to overwrite (default).
    #[default]
    Rename,
    /// A create-only Blob `Put Blob` straight to the final name.
    Put,
}

/// How a publish ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The store confirmed it.
    Published,
    /// The outcome was unknown or reported as a conflict, and verification found our file.
    FoundPublished,
}

/// Publishes `bytes` at `target` (via `temp` in rename mode). `uploaded` tracks whether the temp
/// file is in place, across retries of the same file.
pub async fn publish(
    store: &dyn LandingStore,
    mode: PublishMode,
    target: &str,
    temp: &str,
    bytes: &Bytes,
    uploaded: &mut bool,
) -> Result<PublishOutcome, SinkError> {
    match mode {
        PublishMode::Put => match store.put(target, bytes.clone(), PutMode::Create).await {
            Ok(_) => Ok(PublishOutcome::Published),
            Err(e) if needs_verification(&e) => {
                verify(store, target, None, bytes, e, uploaded).await
            }
            Err(e) => Err(e.into()),
        },
        PublishMode::Rename => {
            if !*uploaded {
                store.put(temp, bytes.clone(), PutMode::Overwrite).await?;
                *uploaded = true;
            }
            match store.rename_no_replace(temp, target).await {
                Ok(()) => Ok(PublishOutcome::Published),
                Err(e) if needs_verification(&e) => {
                    verify(store, target, Some(temp), bytes, e, uploaded).await
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

fn needs_verification(e: &StoreError) -> bool {
    matches!(
        e.kind,
        StoreErrorKind::Transient
            | StoreErrorKind::AlreadyExists
            | StoreErrorKind::NotFound
            | StoreErrorKind::Precondition
    )
}

async fn verify(
    store: &dyn LandingStore,
    target: &str,
    temp: Option<&str>,
    bytes: &Bytes,
    error: StoreError,
    uploaded: &mut bool,
) -> Result<PublishOutcome, SinkError> {
    let temp_present = match temp {
        Some(t) => store.head(t).await?.is_some(),
        None => false,
    };
    match store.get(target).await? {
        Some(found) if found.bytes == *bytes => {
            if let (true, Some(t)) = (temp_present, temp) {
                store.delete(t).await?;
            }
            *uploaded = false;
            Ok(PublishOutcome::FoundPublished)
        }
        Some(_) => Err(SinkError::Conflict {
            path: target.to_owned(),
        }),
        None => {
            if temp.is_some() && !temp_present {
                *uploaded = false;
            }
            // Not published: retry later under the same number.
            Err(SinkError::Store(StoreError::new(
                StoreErrorKind::Transient,
                error.op,
                error.path,
                format!("{} (verified: not published; will retry)", error.message),
            )))
        }
    }
}
