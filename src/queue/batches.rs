//! The queue's batches seen side by side rather than one batch's jobs: which batches a CSV's
//! content already became (so that `vrbulk import` refuses a file twice and says what became of
//! it).

use super::{batch_from_row, Batch, Queue, Result, BATCH_COLUMNS};

impl Queue {
    /// The configure batches imported from a CSV whose content has this SHA-256 (lower-case hex,
    /// as `import` records it), oldest first. Operation batches are left out: they act on a
    /// configure batch, and whatever file they read is not an import of VMs to protect.
    pub fn imports_of(&self, sha256: &str) -> Result<Vec<Batch>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {BATCH_COLUMNS} FROM batches WHERE input_kind = 'csv' \
             AND operation = 'configure' AND input_sha256 = ? ORDER BY id"
        ))?;
        let rows = stmt.query_map([sha256.to_ascii_lowercase()], batch_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::tests::{new_batch, spec};
    use crate::queue::{InputKind, NewBatch};

    fn from_csv(sha: &str) -> NewBatch {
        NewBatch {
            input_path: Some("/data/wave-1.csv".into()),
            input_sha256: Some(sha.into()),
            ..new_batch()
        }
    }

    #[test]
    fn the_imports_of_a_file_are_the_csv_batches_with_its_digest_oldest_first() {
        let mut q = Queue::open_in_memory().unwrap();
        let first = q.create_batch(&from_csv("ab12"), &[spec("a")]).unwrap();
        q.create_batch(&from_csv("cd34"), &[spec("b")]).unwrap();
        let inventory = NewBatch {
            input_kind: InputKind::Inventory,
            input_sha256: Some("ab12".into()),
            ..new_batch()
        };
        q.create_batch(&inventory, &[spec("c")]).unwrap();
        let again = q.create_batch(&from_csv("ab12"), &[spec("d")]).unwrap();

        let ids: Vec<_> = q.imports_of("AB12").unwrap().iter().map(|b| b.id).collect();
        assert_eq!(ids, [first, again]);
        assert!(q.imports_of("ef56").unwrap().is_empty());
    }
}
