//! The spec's list conventions, applied to any serializable items: `filter_property` + repeated
//! `filter`, `sort_by`/`order_by`, `limit`/`offset` paging, and the `{list, _meta}` envelope with
//! `total`, `offset`, `limit` and self/next/previous links.
//!
//! Filtering and sorting work on each item's JSON serialization by a dot path (`name`,
//! `local_vc_server.name`, `vm_disk.vm_id`), as the server documents "support for nested fields".

use std::cmp::Ordering;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use crate::vr::model::{HrefDrData, MetaLinks, MetadataList};

/// The server's page size when the client sends no `limit`.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Larger `limit`s are clamped to this, as appliances cap page sizes.
pub const MAX_PAGE_SIZE: usize = 1000;

/// The list parameters of one request, validated.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    filter_property: Option<String>,
    filters: Vec<String>,
    sort_by: Option<String>,
    descending: bool,
    limit: usize,
    offset: usize,
    /// Every other query parameter, kept for the links.
    rest: Vec<(String, String)>,
}

impl ListQuery {
    pub fn parse(pairs: &[(String, String)]) -> Result<ListQuery, ApiError> {
        let mut q = ListQuery {
            limit: DEFAULT_PAGE_SIZE,
            ..ListQuery::default()
        };
        let mut order_by = None;
        for (k, v) in pairs {
            match k.as_str() {
                "filter_property" => q.filter_property = Some(v.clone()),
                "filter" => q.filters.push(v.clone()),
                "sort_by" => q.sort_by = Some(v.clone()),
                "order_by" => order_by = Some(v.clone()),
                "limit" => {
                    let n: usize = v.trim().parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "limit: must be a non-negative integer, got '{v}'"
                        ))
                    })?;
                    q.limit = n.min(MAX_PAGE_SIZE);
                }
                "offset" => {
                    q.offset = v.trim().parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "offset: must be a non-negative integer, got '{v}'"
                        ))
                    })?;
                }
                _ => q.rest.push((k.clone(), v.clone())),
            }
        }
        match (&q.filter_property, q.filters.is_empty()) {
            (Some(_), true) => {
                return Err(ApiError::bad_request(
                    "filter: filter_property must be used together with at least one filter",
                ))
            }
            (None, false) => {
                return Err(ApiError::bad_request(
                    "filter_property: filter must be used together with filter_property",
                ))
            }
            _ => {}
        }
        if let Some(o) = order_by {
            if q.sort_by.is_none() {
                return Err(ApiError::bad_request(
                    "order_by: must be used together with sort_by",
                ));
            }
            q.descending = match o.to_ascii_lowercase().as_str() {
                "asc" | "ascending" => false,
                "desc" | "descending" => true,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "order_by: must be one of asc, ascending, desc, descending, got '{o}'"
                    )))
                }
            };
        }
        Ok(q)
    }

    /// An extra query parameter (such as `suitable_for_replication`), if given.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.rest
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean extra parameter; absent means `default`.
    pub fn bool_param(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.param(name) {
            None => Ok(default),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(ApiError::bad_request(format!(
                    "{name}: must be true or false, got '{v}'"
                ))),
            },
        }
    }

    /// Filters, sorts and pages `items` into the spec's list envelope. `self_url` is the
    /// request's absolute URL without its query.
    pub fn respond<T: Serialize>(&self, items: &[T], self_url: &str) -> Value {
        let mut values: Vec<Value> = items
            .iter()
            .filter_map(|i| serde_json::to_value(i).ok())
            .collect();
        if let Some(prop) = &self.filter_property {
            values.retain(|v| {
                lookup(v, prop).is_some_and(|found| {
                    scalars(found)
                        .iter()
                        .any(|s| self.filters.iter().any(|f| f == s))
                })
            });
        }
        if let Some(prop) = &self.sort_by {
            values.sort_by(|a, b| {
                let o = compare(lookup(a, prop), lookup(b, prop));
                if self.descending {
                    o.reverse()
                } else {
                    o
                }
            });
        }
        let total = values.len();
        let page: Vec<Value> = values
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect();
        let link = |offset: usize| HrefDrData {
            href: Some(self.href(self_url, offset)),
        };
        let links = MetaLinks {
            self_: Some(link(self.offset)),
            // Saturating: `offset` is whatever the client sent, up to usize::MAX.
            next: (self.limit > 0 && self.offset.saturating_add(self.limit) < total)
                .then(|| link(self.offset + self.limit)),
            previous: (self.offset > 0).then(|| link(self.offset.saturating_sub(self.limit))),
        };
        let meta = MetadataList {
            errors: None,
            total: Some(total as i64),
            offset: Some(self.offset as i64),
            limit: Some(self.limit as i64),
            links: Some(links),
        };
        serde_json::json!({ "list": page, "_meta": meta })
    }

    fn href(&self, self_url: &str, offset: usize) -> String {
        let mut pairs: Vec<(String, String)> = self.rest.clone();
        if let Some(p) = &self.filter_property {
            pairs.push(("filter_property".into(), p.clone()));
            pairs.extend(self.filters.iter().map(|f| ("filter".into(), f.clone())));
        }
        if let Some(s) = &self.sort_by {
            pairs.push(("sort_by".into(), s.clone()));
            let order = if self.descending { "desc" } else { "asc" };
            pairs.push(("order_by".into(), order.into()));
        }
        pairs.push(("limit".into(), self.limit.to_string()));
        pairs.push(("offset".into(), offset.to_string()));
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        format!("{self_url}?{}", query.join("&"))
    }
}

/// The value at a dot path, if every step exists.
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |cur, key| cur.get(key))
}

/// The string forms a filter value is compared with: a scalar's own, or each element's of an array.
fn scalars(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(scalars).collect(),
        Value::Null | Value::Object(_) => Vec::new(),
        other => vec![other.to_string()],
    }
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (None | Some(Value::Null), None | Some(Value::Null)) => Ordering::Equal,
        // Missing values sort last, as they do in the vSphere UI.
        (None | Some(Value::Null), _) => Ordering::Greater,
        (_, None | Some(Value::Null)) => Ordering::Less,
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
    }
}

/// What a query component keeps as it is: RFC 3986's unreserved characters.
const QUERY_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a query component (RFC 3986 unreserved characters pass through).
pub(crate) fn encode(s: &str) -> String {
    utf8_percent_encode(s, QUERY_COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn filters_on_nested_paths_with_any_of_several_values() {
        let items = vec![
            serde_json::json!({"name": "a", "x": {"id": 1}}),
            serde_json::json!({"name": "b", "x": {"id": 2}}),
            serde_json::json!({"name": "c", "x": {"id": 3}}),
        ];
        let q = ListQuery::parse(&pairs(&[
            ("filter_property", "x.id"),
            ("filter", "1"),
            ("filter", "3"),
        ]))
        .unwrap();
        let out = q.respond(&items, "http://h/p");
        assert_eq!(out["_meta"]["total"], 2);
        assert_eq!(out["list"][1]["name"], "c");
    }

    #[test]
    fn filter_without_property_is_a_bad_request() {
        assert!(ListQuery::parse(&pairs(&[("filter", "x")])).is_err());
        assert!(ListQuery::parse(&pairs(&[("filter_property", "x")])).is_err());
        assert!(ListQuery::parse(&pairs(&[("limit", "-1")])).is_err());
    }

    #[test]
    fn encodes_reserved_and_non_ascii_characters() {
        assert_eq!(encode("a b&ü"), "a%20b%26%C3%BC");
    }
}
