//! What the appliance taught about its capacity, kept beyond one run: the most replications a
//! VR server takes when the appliance refused a configure onto it below the figure vrbulk
//! worked with (`workflow::capacity`). Plans and runs of every batch read them back.

use rusqlite::params;
use serde::Serialize;

use super::{JobId, Queue, Result};

/// A VR server's real limit, as the appliance showed it by refusing a configure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LearntLimit {
    pub pairing: String,
    pub server_id: String,
    pub server_name: String,
    /// The most replications the server takes.
    pub replications: u32,
    /// When (Unix ms), and the job whose configure task was refused, in the appliance's words.
    pub learnt_at: i64,
    pub job_id: Option<JobId>,
    pub words: String,
}

impl Queue {
    /// Keeps `limit`, replacing what was learnt of the same server before.
    pub fn learn_limit(&mut self, limit: &LearntLimit) -> Result<()> {
        self.conn.execute(
            "INSERT INTO learnt_server_limits \
             (pairing, server_id, server_name, replications, learnt_at, job_id, words) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pairing, server_id) DO UPDATE SET \
             server_name = excluded.server_name, replications = excluded.replications, \
             learnt_at = excluded.learnt_at, job_id = excluded.job_id, words = excluded.words",
            params![
                limit.pairing,
                limit.server_id,
                limit.server_name,
                limit.replications,
                limit.learnt_at,
                limit.job_id,
                limit.words
            ],
        )?;
        Ok(())
    }

    /// Every limit learnt, by pairing and server.
    pub fn learnt_limits(&self) -> Result<Vec<LearntLimit>> {
        let mut stmt = self.conn.prepare(
            "SELECT pairing, server_id, server_name, replications, learnt_at, job_id, words \
             FROM learnt_server_limits ORDER BY pairing, server_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(LearntLimit {
                pairing: r.get(0)?,
                server_id: r.get(1)?,
                server_name: r.get(2)?,
                replications: r.get(3)?,
                learnt_at: r.get(4)?,
                job_id: r.get(5)?,
                words: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(server: &str, replications: u32) -> LearntLimit {
        LearntLimit {
            pairing: "p1".into(),
            server_id: server.into(),
            server_name: format!("name-{server}"),
            replications,
            learnt_at: 1_000,
            job_id: None,
            words: "has reached the maximum number of replications".into(),
        }
    }

    #[test]
    fn a_later_refusal_replaces_what_was_learnt_of_the_same_server() {
        let mut q = Queue::open_in_memory().unwrap();
        assert!(q.learnt_limits().unwrap().is_empty());
        q.learn_limit(&limit("s1", 5)).unwrap();
        q.learn_limit(&limit("s2", 7)).unwrap();
        q.learn_limit(&limit("s1", 3)).unwrap();
        assert_eq!(q.learnt_limits().unwrap(), [limit("s1", 3), limit("s2", 7)]);
    }
}
