//! `storage`: plugin-private JSON documents in the caller's tenant (capability `storage`).

use crate::bindings::WitError;
use crate::bindings::plinth::plugin::storage::{BatchOp, Document, FilterOp, Host, Page, Query};
use plinth_core::manifest::registry;
use plinth_core::store::{self, DocFilter, DocOp, DocumentQuery};

use super::CapCtx;

fn document(d: store::Document) -> Document {
    Document {
        collection: d.collection,
        key: d.key,
        value: d.value,
        version: d.version,
    }
}

impl Host for CapCtx {
    async fn get(&mut self, collection: String, key: String) -> wasmtime::Result<Result<Option<Document>, WitError>> {
        if let Err(e) = self.require(&registry::STORAGE) {
            return Ok(Err(e));
        }
        let db = self.services.db.clone();
        let result = db
            .documents(&self.caller.tenant_id, &self.plugin.id)
            .get(&collection, &key)
            .await;
        Ok(result.map(|d| d.map(document)).map_err(|e| self.store_error(e)))
    }

    async fn put(
        &mut self,
        collection: String,
        key: String,
        value: String,
        expected_version: Option<u64>,
    ) -> wasmtime::Result<Result<u64, WitError>> {
        if let Err(e) = self.require(&registry::STORAGE) {
            return Ok(Err(e));
        }
        let db = self.services.db.clone();
        let result = db
            .documents(&self.caller.tenant_id, &self.plugin.id)
            .put(&collection, &key, &value, expected_version)
            .await;
        Ok(result.map_err(|e| self.store_error(e)))
    }

    async fn delete(
        &mut self,
        collection: String,
        key: String,
        expected_version: Option<u64>,
    ) -> wasmtime::Result<Result<bool, WitError>> {
        if let Err(e) = self.require(&registry::STORAGE) {
            return Ok(Err(e));
        }
        let db = self.services.db.clone();
        let result = db
            .documents(&self.caller.tenant_id, &self.plugin.id)
            .delete(&collection, &key, expected_version)
            .await;
        Ok(result.map_err(|e| self.store_error(e)))
    }

    async fn list(&mut self, collection: String, query: Query) -> wasmtime::Result<Result<Page, WitError>> {
        if let Err(e) = self.require(&registry::STORAGE) {
            return Ok(Err(e));
        }
        let query = DocumentQuery {
            prefix: query.prefix,
            filters: query
                .filters
                .into_iter()
                .map(|f| DocFilter {
                    field: f.field,
                    op: match f.op {
                        FilterOp::Eq => DocOp::Eq,
                        FilterOp::Ne => DocOp::Ne,
                        FilterOp::Lt => DocOp::Lt,
                        FilterOp::Lte => DocOp::Lte,
                        FilterOp::Gt => DocOp::Gt,
                        FilterOp::Gte => DocOp::Gte,
                    },
                    value: f.value,
                })
                .collect(),
            cursor: query.cursor,
            limit: query.limit,
        };
        let db = self.services.db.clone();
        let result = db
            .documents(&self.caller.tenant_id, &self.plugin.id)
            .list(&collection, &query)
            .await;
        Ok(result
            .map(|p| Page {
                documents: p.documents.into_iter().map(document).collect(),
                next_cursor: p.next_cursor,
            })
            .map_err(|e| self.store_error(e)))
    }

    async fn batch(&mut self, ops: Vec<BatchOp>) -> wasmtime::Result<Result<Vec<u64>, WitError>> {
        if let Err(e) = self.require(&registry::STORAGE) {
            return Ok(Err(e));
        }
        let ops: Vec<store::BatchOp> = ops
            .into_iter()
            .map(|op| match op {
                BatchOp::Put((collection, key, value, expected)) => store::BatchOp::Put {
                    collection,
                    key,
                    value,
                    expected,
                },
                BatchOp::Delete((collection, key, expected)) => store::BatchOp::Delete {
                    collection,
                    key,
                    expected,
                },
            })
            .collect();
        let db = self.services.db.clone();
        let result = db.documents(&self.caller.tenant_id, &self.plugin.id).batch(&ops).await;
        Ok(result.map_err(|e| self.store_error(e)))
    }
}
