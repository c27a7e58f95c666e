//! One download per blob: within a process, operations that need the same blob at the same
//! time take turns, so the second finds it stored instead of fetching it again. (Across
//! processes the store's lock on its partial download does the same:
//! [`crate::store::ResumableWrites::wait_turn`].)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use ukpm_types::Digest;

/// Blobs being downloaded by this process, each with the turn its downloaders take.
#[derive(Default)]
pub(crate) struct InFlight(Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>);

/// A blob's turn, held while downloading it; the entry goes when nobody waits any more, so
/// the table holds only what is moving now (a blob collected later is fetched again).
pub(crate) struct Turn<'a> {
    table: &'a InFlight,
    digest: Digest,
    slot: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl InFlight {
    /// Waits until no other operation of this process downloads `digest`, then holds its turn.
    pub(crate) async fn turn(&self, digest: Digest) -> Turn<'_> {
        let slot = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(digest)
            .or_default()
            .clone();
        let guard = slot.clone().lock_owned().await;
        Turn {
            table: self,
            digest,
            slot,
            guard: Some(guard),
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut table = self.table.0.lock().unwrap_or_else(PoisonError::into_inner);
        drop(self.guard.take());
        // The table's handle, this turn's and its guard's: nobody else waits.
        if table
            .get(&self.digest)
            .is_some_and(|slot| Arc::ptr_eq(slot, &self.slot) && Arc::strong_count(slot) <= 2)
        {
            table.remove(&self.digest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_are_taken_one_at_a_time_and_the_table_empties() {
        let table = Arc::new(InFlight::default());
        let digest = Digest::of(b"blob");
        let first = table.turn(digest).await;
        let waiting = {
            let table = table.clone();
            tokio::spawn(async move {
                let _second = table.turn(digest).await;
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the second turn waits for the first");
        drop(first);
        waiting.await.unwrap();
        assert!(table.0.lock().unwrap().is_empty());
        // Another blob never waits for this one.
        let _a = table.turn(digest).await;
        let _b = table.turn(Digest::of(b"other")).await;
    }
}
