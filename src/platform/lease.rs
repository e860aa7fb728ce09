//! Where leases are stored (the rules are `rollout::lease`'s): a Kubernetes
//! `coordination.k8s.io/v1` `Lease` in the environment's namespace, or an item of a `DynamoDB`
//! table. Both read a record with its version and write against that version, so of two
//! writers that read the same record one wins and the other gets [`ErrorKind::Conflict`].
//!
//! | | Kubernetes `Lease` | `DynamoDB` item |
//! |---|---|---|
//! | key | `movieverse-deploy-<app>` in the namespace | `lock` = `ecs/<region>/<cluster>/<service>` |
//! | holder | `spec.holderIdentity`, annotations `movieverse.dev/run` and `movieverse.dev/actor` | `holder`, `run`, `actor` |
//! | times | `spec.acquireTime`, `spec.renewTime`, `spec.leaseDurationSeconds` | `since`, `renewed`, `duration` (ms) |
//! | version | `metadata.resourceVersion` (create, or replace with it) | `version` (`attribute_not_exists(lock)`, or `version = :seen`) |
//! | release | delete with the resourceVersion as precondition | delete on condition `holder = :me` |

use std::collections::HashMap;

use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
use aws_sdk_dynamodb::types::AttributeValue;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use serde_json::json;

use super::observation::{ErrorKind, PlatformError};
use crate::rollout::engine::Millis;
use crate::rollout::lease::{Holder, Record};

/// A record as read, with the version a write must name; `record` is `None` for a Lease
/// object that nobody holds (`holderIdentity` empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub record: Option<Record>,
    pub version: String,
}

/// One lease's place.
pub enum Store {
    Kubernetes {
        api: Box<Api<Lease>>,
        name: String,
    },
    DynamoDb {
        client: aws_sdk_dynamodb::Client,
        table: String,
        key: String,
    },
}

const RUN: &str = "movieverse.dev/run";
const ACTOR: &str = "movieverse.dev/actor";

impl Store {
    /// The Kubernetes `Lease` of `app` in `namespace`.
    pub fn kubernetes(client: kube::Client, namespace: &str, app: &str) -> Self {
        Self::Kubernetes {
            api: Box::new(Api::namespaced(client, namespace)),
            name: format!("movieverse-deploy-{app}"),
        }
    }

    /// Where the lease is, for messages: `Lease movieverse-deploy-web` or `DynamoDB table
    /// locks, item ecs/…`.
    pub fn describe(&self) -> String {
        match self {
            Self::Kubernetes { name, .. } => format!("Lease {name}"),
            Self::DynamoDb { table, key, .. } => {
                format!("the DynamoDB item {key} of table {table}")
            }
        }
    }

    /// The record, or `None` when nobody holds the lease.
    pub async fn read(&self) -> Result<Option<Stored>, PlatformError> {
        match self {
            Self::Kubernetes { api, name } => {
                let lease = api
                    .get_opt(name)
                    .await
                    .map_err(|e| super::kubernetes::classify(&format!("get Lease {name}"), &e))?;
                Ok(lease.and_then(|l| from_lease(&l)))
            }
            Self::DynamoDb { client, table, key } => {
                let out = client
                    .get_item()
                    .table_name(table)
                    .key("lock", AttributeValue::S(key.clone()))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| dynamo_error("GetItem", table, &e))?;
                Ok(out.item.as_ref().and_then(from_item))
            }
        }
    }

    /// Writes `record` over the version read (`None`: there was no record). A lost race is
    /// `ErrorKind::Conflict`.
    pub async fn write(
        &self,
        record: &Record,
        version: Option<&str>,
    ) -> Result<String, PlatformError> {
        match self {
            Self::Kubernetes { api, name } => {
                let mut lease = to_lease(name, record);
                lease.metadata.resource_version = version.map(str::to_owned);
                let op = |verb: &str| format!("{verb} Lease {name}");
                let written = match version {
                    None => api
                        .create(&PostParams::default(), &lease)
                        .await
                        .map_err(|e| {
                            conflict_on(super::kubernetes::classify(&op("create"), &e), &e)
                        })?,
                    Some(_) => api
                        .replace(name, &PostParams::default(), &lease)
                        .await
                        .map_err(|e| {
                            conflict_on(super::kubernetes::classify(&op("update"), &e), &e)
                        })?,
                };
                Ok(written.metadata.resource_version.unwrap_or_default())
            }
            Self::DynamoDb { client, table, key } => {
                let next = version.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + 1;
                let mut put = client
                    .put_item()
                    .table_name(table)
                    .set_item(Some(to_item(key, record, next)))
                    .expression_attribute_names("#lock", "lock");
                put = match version {
                    None => put.condition_expression("attribute_not_exists(#lock)"),
                    Some(v) => put
                        .condition_expression("attribute_exists(#lock) AND #version = :seen")
                        .expression_attribute_names("#version", "version")
                        .expression_attribute_values(":seen", AttributeValue::N(v.to_owned())),
                };
                put.send()
                    .await
                    .map_err(|e| dynamo_error("PutItem", table, &e))?;
                Ok(next.to_string())
            }
        }
    }

    /// Gives the lease up, if it is still `holder`'s at `version` (a lease taken over since
    /// is left to its new holder).
    pub async fn release(&self, holder: &Holder, version: &str) -> Result<(), PlatformError> {
        let result = match self {
            Self::Kubernetes { api, name } => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        resource_version: Some(version.to_owned()),
                        uid: None,
                    }),
                    ..DeleteParams::default()
                };
                api.delete(name, &params).await.map(|_| ()).map_err(|e| {
                    conflict_on(
                        super::kubernetes::classify(&format!("delete Lease {name}"), &e),
                        &e,
                    )
                })
            }
            Self::DynamoDb { client, table, key } => client
                .delete_item()
                .table_name(table)
                .key("lock", AttributeValue::S(key.clone()))
                .condition_expression("#holder = :me")
                .expression_attribute_names("#holder", "holder")
                .expression_attribute_values(":me", AttributeValue::S(holder.id.clone()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| dynamo_error("DeleteItem", table, &e)),
        };
        match result {
            Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => Ok(()),
            other => other,
        }
    }
}

/// A lease table's partition key (name and type, `S` for a string), `None` when the table
/// does not exist: `verify` checks it is `lock`, a string.
pub async fn table_key(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Option<(String, String)>, PlatformError> {
    let out = match client.describe_table().table_name(table).send().await {
        Ok(out) => out,
        Err(e) if e.code() == Some("ResourceNotFoundException") => return Ok(None),
        Err(e) => return Err(dynamo_error("DescribeTable", table, &e)),
    };
    let Some(t) = out.table else {
        return Ok(None);
    };
    let Some(hash) = t
        .key_schema()
        .iter()
        .find(|k| k.key_type() == &aws_sdk_dynamodb::types::KeyType::Hash)
    else {
        return Ok(Some((String::new(), String::new())));
    };
    let name = hash.attribute_name().to_owned();
    let kind = t
        .attribute_definitions()
        .iter()
        .find(|a| a.attribute_name() == name)
        .map(|a| a.attribute_type().as_str().to_owned())
        .unwrap_or_default();
    Ok(Some((name, kind)))
}

/// A 409 (already exists, or the resourceVersion moved) is a lost race.
fn conflict_on(mut e: PlatformError, source: &kube::Error) -> PlatformError {
    if matches!(source, kube::Error::Api(s) if s.code == 409) {
        e.kind = ErrorKind::Conflict;
    }
    e
}

fn dynamo_error<E>(
    operation: &str,
    table: &str,
    err: &aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> PlatformError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let op = format!("dynamodb:{operation} on table {table}");
    let mut e = super::ecs::classify(&op, err);
    match err.code() {
        Some("ConditionalCheckFailedException") => e.kind = ErrorKind::Conflict,
        Some("ResourceNotFoundException") => e.kind = ErrorKind::NotFound,
        Some("ProvisionedThroughputExceededException" | "RequestLimitExceeded") => {
            e.kind = ErrorKind::Throttled;
        }
        _ => {}
    }
    e
}

fn millis_of(t: &str) -> Option<Millis> {
    let at = humantime::parse_rfc3339_weak(t).ok()?;
    Millis::try_from(at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis()).ok()
}

fn time_of(ms: Millis) -> String {
    humantime::format_rfc3339_micros(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

fn to_lease(name: &str, r: &Record) -> Lease {
    serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/managed-by": "movieverse-deploy"},
            "annotations": {RUN: r.holder.run, ACTOR: r.holder.actor},
        },
        "spec": {
            "holderIdentity": r.holder.id,
            "leaseDurationSeconds": r.duration.div_ceil(1000),
            "acquireTime": time_of(r.since),
            "renewTime": time_of(r.renewed),
        },
    }))
    .expect("a Lease from its fields")
}

fn from_lease(l: &Lease) -> Option<Stored> {
    let version = l.metadata.resource_version.clone().unwrap_or_default();
    let value = serde_json::to_value(l).ok()?;
    let spec = &value["spec"];
    let Some(id) = spec["holderIdentity"].as_str().filter(|s| !s.is_empty()) else {
        return Some(Stored {
            record: None,
            version,
        });
    };
    let annotation = |k: &str| {
        value["metadata"]["annotations"][k]
            .as_str()
            .unwrap_or("unknown")
            .to_owned()
    };
    let renewed = spec["renewTime"].as_str().and_then(millis_of).unwrap_or(0);
    Some(Stored {
        record: Some(Record {
            holder: Holder {
                id: id.to_owned(),
                run: annotation(RUN),
                actor: annotation(ACTOR),
            },
            since: spec["acquireTime"]
                .as_str()
                .and_then(millis_of)
                .unwrap_or(renewed),
            renewed,
            duration: spec["leaseDurationSeconds"].as_u64().unwrap_or(0) * 1000,
        }),
        version,
    })
}

fn to_item(key: &str, r: &Record, version: u64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("lock".to_owned(), AttributeValue::S(key.to_owned())),
        ("holder".to_owned(), AttributeValue::S(r.holder.id.clone())),
        ("run".to_owned(), AttributeValue::S(r.holder.run.clone())),
        (
            "actor".to_owned(),
            AttributeValue::S(r.holder.actor.clone()),
        ),
        ("since".to_owned(), AttributeValue::N(r.since.to_string())),
        (
            "renewed".to_owned(),
            AttributeValue::N(r.renewed.to_string()),
        ),
        (
            "duration".to_owned(),
            AttributeValue::N(r.duration.to_string()),
        ),
        ("version".to_owned(), AttributeValue::N(version.to_string())),
    ])
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Option<Stored> {
    let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let n = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some(Stored {
        record: Some(Record {
            holder: Holder {
                id: s("holder")?,
                run: s("run").unwrap_or_else(|| "unknown".into()),
                actor: s("actor").unwrap_or_else(|| "unknown".into()),
            },
            since: n("since").unwrap_or(0),
            renewed: n("renewed").unwrap_or(0),
            duration: n("duration").unwrap_or(0),
        }),
        version: n("version").unwrap_or(0).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            holder: Holder {
                id: "local:42@host".into(),
                run: "me@host (pid 42)".into(),
                actor: "me".into(),
            },
            since: 1_764_563_400_123,
            renewed: 1_764_563_460_456,
            duration: 60_000,
        }
    }

    #[test]
    fn a_lease_round_trips() {
        let mut lease = to_lease("movieverse-deploy-web", &record());
        lease.metadata.resource_version = Some("17".into());
        assert_eq!(
            from_lease(&lease),
            Some(Stored {
                record: Some(record()),
                version: "17".into()
            })
        );
    }

    #[test]
    fn an_item_round_trips() {
        assert_eq!(
            from_item(&to_item("ecs/eu/c/s", &record(), 4)),
            Some(Stored {
                record: Some(record()),
                version: "4".into()
            })
        );
    }
}
