//! Opening the queue for a command about one batch: the batch `--batch` names, or the newest.
//! A command never creates a queue file it was only to read from, and an unknown `--batch` is
//! answered with the batches there are.

use std::path::Path;

use super::{Batch, BatchId, Queue, QueueError, Result};

impl Queue {
    /// The queue at `db` and the batch `batch` names (the newest without one). Never creates
    /// a queue file.
    pub fn open_batch(db: &Path, batch: Option<BatchId>) -> Result<(Queue, Batch)> {
        Self::existing(db)?.with_batch(db, batch)
    }

    /// [`Queue::open_batch`] for a command that only reads (`status`, `report`): the queue is
    /// opened read-only, so a copied queue or a mounted backup reads too, and nothing is
    /// changed in it.
    pub fn read_batch(db: &Path, batch: Option<BatchId>) -> Result<(Queue, Batch)> {
        Self::read_only_existing(db)?.with_batch(db, batch)
    }

    /// The queue at `db`, which must exist, opened read-only (`batches`).
    pub fn read_only_existing(db: &Path) -> Result<Queue> {
        if !db.exists() {
            return Err(QueueError::NoQueue { path: db.into() });
        }
        Queue::open_read_only(db)
    }

    /// The queue at `db`, which must exist: a command that acts on a batch already there must
    /// not leave an empty queue behind a mistyped `--db`.
    pub fn existing(db: &Path) -> Result<Queue> {
        if !db.exists() {
            return Err(QueueError::NoQueue { path: db.into() });
        }
        Queue::open(db)
    }

    fn with_batch(self, db: &Path, batch: Option<BatchId>) -> Result<(Queue, Batch)> {
        let chosen = match batch {
            None => self.latest_batch()?,
            Some(id) => match self.batch(id) {
                Ok(found) => Some(found),
                Err(QueueError::NoSuchBatch(_)) => {
                    return Err(QueueError::UnknownBatch {
                        id,
                        path: db.into(),
                        known: Batch::list(&self.batches()?),
                    })
                }
                Err(other) => return Err(other),
            },
        };
        match chosen {
            Some(found) => Ok((self, found)),
            None => Err(QueueError::Empty { path: db.into() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::tests::new_batch;
    use crate::queue::NewBatch;

    #[test]
    fn a_command_gets_the_batch_it_names_or_the_newest_and_never_a_new_queue() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        let err = Queue::open_batch(&db, None).unwrap_err();
        assert!(matches!(err, QueueError::NoQueue { .. }), "{err}");
        let err = Queue::read_batch(&db, Some(1)).unwrap_err();
        assert!(matches!(err, QueueError::NoQueue { .. }), "{err}");
        assert!(!db.exists(), "no queue file left behind");

        let mut q = Queue::open(&db).unwrap();
        let err = Queue::open_batch(&db, None).unwrap_err();
        assert!(matches!(err, QueueError::Empty { .. }), "{err}");
        q.create_batch(&new_batch(), &[]).unwrap();
        let second = NewBatch {
            name: "wave 2".into(),
            ..new_batch()
        };
        q.create_batch(&second, &[]).unwrap();
        assert_eq!(Queue::open_batch(&db, None).unwrap().1.id, 2, "the newest");
        assert_eq!(Queue::read_batch(&db, Some(1)).unwrap().1.name, "wave 1");

        // The batch and the batches there are, each said once.
        let err = Queue::open_batch(&db, Some(9)).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "--batch 9: no such batch in {}; its batches are: 1 \"wave 1\", 2 \"wave 2\"",
                db.display()
            )
        );
    }
}
