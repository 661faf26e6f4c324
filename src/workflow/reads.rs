//! Reading many things of the appliance with few calls: the replications of a set of VMs, the
//! tasks of a set of ids or VMs. Each read asks with `filter=` values, [`IDS_PER_CALL`] a call,
//! or reads the whole unfiltered list when that takes fewer calls (a page holds up to 1000).
//! The runner and `watch` share these.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use futures_util::future::{join_all, try_join_all};

use crate::vr::model::{ReplicationInfo, Task};
use crate::vr::{ApiError, Client, Filter};

/// `filter=` values per call: a URL that stays short, and one page of the server's default size.
pub const IDS_PER_CALL: usize = 100;

/// Tasks the recent list no longer holds, asked one by one, at most this many per read.
const SINGLE_TASK_READS: usize = 10;

/// The items of a list whose `property` is one of `wanted`: with filtered calls of
/// [`IDS_PER_CALL`] values, or with the unfiltered list when that takes fewer calls (`all`
/// estimates its length). The caller picks its items out of what comes back.
pub async fn read_many<T, Fut>(
    client: &Client,
    property: &str,
    wanted: &[String],
    all: usize,
    fetch: impl Fn(Option<Filter>) -> Fut,
) -> Result<Vec<T>, ApiError>
where
    Fut: Future<Output = Result<Vec<T>, ApiError>>,
{
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let page = client.page_size();
    if all.max(1).div_ceil(page) < wanted.len().div_ceil(IDS_PER_CALL) {
        return fetch(None).await;
    }
    let pages = try_join_all(
        wanted
            .chunks(IDS_PER_CALL)
            .map(|chunk| fetch(Some(Filter::new(property, chunk.iter().cloned())))),
    )
    .await?;
    Ok(pages.into_iter().flatten().collect())
}

/// Replications of these VMs on `pairing`, by VM id; `all` estimates how many replications the
/// pairing has (the discovery's count and these, say).
pub async fn replications_of(
    client: &Client,
    pairing: &str,
    vm_ids: &[String],
    all: usize,
) -> Result<HashMap<String, ReplicationInfo>, ApiError> {
    let reps = read_many(client, "vm_id", vm_ids, all, |filter| async move {
        client.replications(pairing, filter.as_ref()).await
    })
    .await?;
    let wanted: HashSet<&String> = vm_ids.iter().collect();
    Ok(reps
        .into_iter()
        .filter_map(|r| Some((r.vm_id.clone()?, r)))
        .filter(|(vm, _)| wanted.contains(vm))
        .collect())
}

/// The newest recent task of each of these VMs (the task's `entity` is the VM).
pub async fn tasks_of_vms(
    client: &Client,
    vm_ids: &[String],
) -> Result<HashMap<String, Task>, ApiError> {
    let tasks = read_many(
        client,
        "entity",
        vm_ids,
        vm_ids.len(),
        |filter| async move { client.tasks(filter.as_ref()).await },
    )
    .await?;
    let wanted: HashSet<&String> = vm_ids.iter().collect();
    let mut newest: HashMap<String, Task> = HashMap::new();
    for t in tasks {
        let Some(vm) = t.entity.clone().filter(|vm| wanted.contains(vm)) else {
            continue;
        };
        let newer = newest
            .get(&vm)
            .is_none_or(|old| t.queued_time.unwrap_or(0) >= old.queued_time.unwrap_or(0));
        if newer {
            newest.insert(vm, t);
        }
    }
    Ok(newest)
}

/// These tasks by id: from the recent list (filtered, or whole when that is cheaper), then
/// `GET /tasks/{id}` for a few the list no longer holds. A failed read answers for every task
/// it should have brought.
pub async fn tasks_by_id(
    client: &Client,
    ids: &[String],
) -> HashMap<String, Result<Task, Arc<ApiError>>> {
    let mut found: HashMap<String, Result<Task, Arc<ApiError>>> = HashMap::new();
    let listed = read_many(client, "id", ids, ids.len(), |filter| async move {
        client.tasks(filter.as_ref()).await
    })
    .await;
    match listed {
        Ok(tasks) => found.extend(tasks.into_iter().map(|t| (t.id.clone(), Ok(t)))),
        Err(e) => {
            let e = Arc::new(e);
            return ids.iter().map(|id| (id.clone(), Err(e.clone()))).collect();
        }
    }
    let missing: Vec<&String> = ids
        .iter()
        .filter(|id| !found.contains_key(*id))
        .take(SINGLE_TASK_READS)
        .collect();
    let singles = join_all(missing.iter().map(|id| client.task(id))).await;
    for (id, t) in missing.into_iter().zip(singles) {
        found.insert(id.clone(), t.map_err(Arc::new));
    }
    found
}
