//! Typed access to the plugin's private document storage (capability `storage`).

use std::marker::PhantomData;

use serde::{Serialize, de::DeserializeOwned};

use crate::__private::wit::plinth::plugin::storage as wit;
use crate::Error;

/// A value read from storage together with its version, for optimistic concurrency.
///
/// ```
/// let v = plinth_sdk::storage::Versioned { key: "k".to_string(), value: 5u32, version: 2 };
/// assert_eq!(v.version, 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The document's key.
    pub key: String,
    /// The decoded value.
    pub value: T,
    /// Its version: 1 after the first write, +1 per later write.
    pub version: u64,
}

/// A page of a listing.
///
/// ```
/// let page: plinth_sdk::storage::Page<u32> = plinth_sdk::storage::Page { items: vec![], next_cursor: None };
/// assert!(page.items.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The documents, in key order.
    pub items: Vec<Versioned<T>>,
    /// Cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Comparison for [`Query::filter`].
///
/// ```
/// let q = plinth_sdk::storage::Query::new().filter("parent", plinth_sdk::storage::Op::Eq, "t-1");
/// # let _ = q;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal (documents without the field do not match).
    Ne,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
}

/// Which documents to list: key prefix, field filters, cursor and page size.
///
/// ```
/// use plinth_sdk::storage::{Query, Op};
/// let q = Query::new().prefix("2026-").filter("score", Op::Gte, 10).limit(50);
/// # let _ = q;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Query {
    prefix: Option<String>,
    filters: Vec<wit::Filter>,
    cursor: Option<String>,
    limit: u32,
}

impl Query {
    /// Everything, first page of 100.
    ///
    /// ```
    /// let _ = plinth_sdk::storage::Query::new();
    /// ```
    pub fn new() -> Self {
        Query::default()
    }

    /// Only keys starting with `prefix`.
    ///
    /// ```
    /// let _ = plinth_sdk::storage::Query::new().prefix("user:");
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Only documents whose top-level `field` compares to `value` as `op` says.
    ///
    /// ```
    /// use plinth_sdk::storage::{Query, Op};
    /// let _ = Query::new().filter("archived", Op::Eq, false);
    /// ```
    pub fn filter(mut self, field: &str, op: Op, value: impl Serialize) -> Self {
        let op = match op {
            Op::Eq => wit::FilterOp::Eq,
            Op::Ne => wit::FilterOp::Ne,
            Op::Lt => wit::FilterOp::Lt,
            Op::Lte => wit::FilterOp::Lte,
            Op::Gt => wit::FilterOp::Gt,
            Op::Gte => wit::FilterOp::Gte,
        };
        // Serialising a scalar cannot fail; a composite value is rejected by the host.
        let value = serde_json::to_string(&value).unwrap_or_else(|_| "null".into());
        self.filters.push(wit::Filter {
            field: field.to_string(),
            op,
            value,
        });
        self
    }

    /// Continue after a previous page.
    ///
    /// ```
    /// let _ = plinth_sdk::storage::Query::new().cursor(Some("abc".to_string()));
    /// ```
    pub fn cursor(mut self, cursor: Option<String>) -> Self {
        self.cursor = cursor;
        self
    }

    /// Page size, 1–1000 (default 100).
    ///
    /// ```
    /// let _ = plinth_sdk::storage::Query::new().limit(500);
    /// ```
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }
}

/// A named collection of JSON documents of type `T`, private to this plugin in the
/// calling tenant. Values go in and come out through serde.
///
/// ```no_run
/// use plinth_sdk::storage::Collection;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Counter { n: u64 }
/// let counters: Collection<Counter> = Collection::new("counters");
/// let n = counters.update("greetings", |c| Counter { n: c.map_or(0, |c| c.n) + 1 })?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Collection<T> {
    name: String,
    _value: PhantomData<fn() -> T>,
}

/// How often [`Collection::update`] retries after a conflicting concurrent write.
const UPDATE_ATTEMPTS: usize = 8;

impl<T: Serialize + DeserializeOwned> Collection<T> {
    /// A handle on the collection `name` (nothing is created until a write).
    ///
    /// ```
    /// let c: plinth_sdk::storage::Collection<String> = plinth_sdk::storage::Collection::new("notes");
    /// assert_eq!(c.name(), "notes");
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        Collection {
            name: name.into(),
            _value: PhantomData,
        }
    }

    /// The collection's name.
    ///
    /// ```
    /// # let c: plinth_sdk::storage::Collection<String> = plinth_sdk::storage::Collection::new("notes");
    /// assert_eq!(c.name(), "notes");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Read a document; `None` if absent.
    ///
    /// ```no_run
    /// # let c: plinth_sdk::storage::Collection<String> = plinth_sdk::storage::Collection::new("notes");
    /// if let Some(doc) = c.get("welcome")? { println!("{} (v{})", doc.value, doc.version); }
    /// # Ok::<(), plinth_sdk::Error>(())
    /// ```
    pub fn get(&self, key: &str) -> Result<Option<Versioned<T>>, Error> {
        wit::get(&self.name, key)?.map(decode).transpose()
    }

    /// Write unconditionally; returns the new version.
    ///
    /// ```no_run
    /// # let c: plinth_sdk::storage::Collection<String> = plinth_sdk::storage::Collection::new("notes");
    /// let version = c.put("welcome", &"hello".to_string())?;
    /// # Ok::<(), plinth_sdk::Error>(())
    /// ```
    pub fn put(&self, key: &str, value: &T) -> Result<u64, Error> {
        Ok(wit::put(&self.name, key, &encode(value)?, None)?)
    }

    /// Create; fails with a conflict (409) if the key exists.
    ///
    /// ```no_run
    /// # let c: plinth_sdk::storage::Collection<String> = plinth_sdk::storage::Collection::new("notes");
    /// c.insert("welcome", &"hello".to_string())?;
    /// # Ok::<(), plinth_sdk::Error>(())
    /// ```
    pub fn insert(&self, key: &str, value: &T) -> Result<u64, Error> {
        Ok(wit::put(&self.name, key, &encode(value)?, Some(0))?)
    }

    /// Replace only if the document is still at `version` (else 409 conflict).
    ///
    /// ```no_run
    /// # let c: plinth_sdk::storage::Collection<String> = plinth_sdk::storage::Collection::new("notes");
    /// let doc = c.get("welcome")?.expect("exists");
    /// c.replace("welcome", &format!("{}!", doc.value), doc.version)?;
    /// # Ok::<(), plinth_sdk::Error>(())
    /// ```
    pub fn replace(&self, key: &str, value: &T, version: u64) -> Result<u64, Error> {
        Ok(wit::put(&self.name, key, &encode(value)?, Some(version))?)
    }

    /// Read-modify-write with automatic retry on concurrent writes. `f` gets the
    /// current value (`None` if absent) and returns the new one. Returns the stored value.
    ///
    /// ```no_run
    /// # let c: plinth_sdk::storage::Collection<u64> = plinth_sdk::storage::Collection::new("counters");
    /// let n = c.update("hits", |n| n.unwrap_or(0) + 1)?;
    /// # Ok::<(), plinth_sdk::Error>(())
    /// ```
    pub fn update(&self, key: &str, mut f: impl FnMut(Option<T>) -> T) -> Result<Versioned<T>, Error> {
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.get(key)?;
            let expected = current.as_ref().map_or(0, |c| c.version);
            let value = f(current.map(|c| c.value));
            match wit::put(&self.name, key, &encode(&value)?, Some(expected)) {
                Ok(version) => {
                    return Ok(Versioned {
                        key: key.to_string(),
                        value,
                        version,
                    });
                }
                Err(crate::__private::wit::plinth::plugin::types::Error::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict(format!(
            "`{key}` kept changing; gave up after {UPDATE_ATTEMPTS} attempts"
        )))
    }

    /// Delete; `true` if it existed. With `Some(version)` only if still at that version.
    ///
    /// ```no_run
    /// # let c: plinth_sdk::storage::Collection<String> = plinth_sdk::storage::Collection::new("notes");
    /// let existed = c.delete("welcome", None)?;
    /// # Ok::<(), plinth_sdk::Error>(())
    /// ```
    pub fn delete(&self, key: &str, version: Option<u64>) -> Result<bool, Error> {
        Ok(wit::delete(&self.name, key, version)?)
    }

    /// List documents in key order.
    ///
    /// ```no_run
    /// use plinth_sdk::storage::{Collection, Query};
    /// # let c: Collection<String> = Collection::new("notes");
    /// let page = c.list(Query::new().prefix("2026-").limit(20))?;
    /// for doc in page.items { println!("{}", doc.key); }
    /// # Ok::<(), plinth_sdk::Error>(())
    /// ```
    pub fn list(&self, query: Query) -> Result<Page<T>, Error> {
        let page = wit::list(
            &self.name,
            &wit::Query {
                prefix: query.prefix,
                filters: query.filters,
                cursor: query.cursor,
                limit: query.limit,
            },
        )?;
        Ok(Page {
            items: page.documents.into_iter().map(decode).collect::<Result<_, _>>()?,
            next_cursor: page.next_cursor,
        })
    }

    /// Call `each` for every document `query` matches, page by page (bounded memory).
    ///
    /// ```no_run
    /// use plinth_sdk::storage::{Collection, Query};
    /// # let c: Collection<String> = Collection::new("notes");
    /// let mut n = 0;
    /// c.for_each(Query::new().limit(1000), |_doc| { n += 1; Ok(()) })?;
    /// # Ok::<(), plinth_sdk::Error>(())
    /// ```
    pub fn for_each(&self, query: Query, mut each: impl FnMut(Versioned<T>) -> Result<(), Error>) -> Result<(), Error> {
        let mut query = query;
        loop {
            let page = self.list(query.clone())?;
            for doc in page.items {
                each(doc)?;
            }
            match page.next_cursor {
                Some(c) => query = query.cursor(Some(c)),
                None => return Ok(()),
            }
        }
    }
}

/// Several writes, possibly across collections, applied atomically.
///
/// ```no_run
/// use plinth_sdk::storage::Batch;
/// Batch::new()
///     .put("territories", "t-2", &serde_json::json!({"parent": "t-1"}), Some(3))?
///     .delete("rules", "r-9", None)
///     .commit()?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Batch {
    ops: Vec<wit::BatchOp>,
}

impl Batch {
    /// An empty batch.
    ///
    /// ```
    /// assert!(plinth_sdk::storage::Batch::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Batch::default()
    }

    /// Add a write (`expected_version` as for [`Collection::replace`]; `Some(0)` = must not exist).
    ///
    /// ```
    /// let b = plinth_sdk::storage::Batch::new().put("c", "k", &1, None).unwrap();
    /// assert_eq!(b.len(), 1);
    /// ```
    pub fn put<T: Serialize>(
        mut self,
        collection: &str,
        key: &str,
        value: &T,
        expected_version: Option<u64>,
    ) -> Result<Self, Error> {
        self.ops.push(wit::BatchOp::Put((
            collection.to_string(),
            key.to_string(),
            encode(value)?,
            expected_version,
        )));
        Ok(self)
    }

    /// Add a delete.
    ///
    /// ```
    /// let b = plinth_sdk::storage::Batch::new().delete("c", "k", None);
    /// assert_eq!(b.len(), 1);
    /// ```
    pub fn delete(mut self, collection: &str, key: &str, expected_version: Option<u64>) -> Self {
        self.ops.push(wit::BatchOp::Delete((
            collection.to_string(),
            key.to_string(),
            expected_version,
        )));
        self
    }

    /// Number of operations.
    ///
    /// ```
    /// assert_eq!(plinth_sdk::storage::Batch::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there are no operations.
    ///
    /// ```
    /// assert!(plinth_sdk::storage::Batch::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Apply all operations atomically; returns per operation the new version (0 for deletes).
    ///
    /// ```no_run
    /// let versions = plinth_sdk::storage::Batch::new().delete("c", "k", None).commit()?;
    /// # Ok::<(), plinth_sdk::Error>(())
    /// ```
    pub fn commit(self) -> Result<Vec<u64>, Error> {
        if self.ops.is_empty() {
            return Ok(Vec::new());
        }
        Ok(wit::batch(&self.ops)?)
    }
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    Ok(serde_json::to_string(value)?)
}

fn decode<T: DeserializeOwned>(doc: wit::Document) -> Result<Versioned<T>, Error> {
    let value = serde_json::from_str(&doc.value).map_err(|e| {
        Error::internal(format!(
            "stored document {}/{} does not decode: {e}",
            doc.collection, doc.key
        ))
    })?;
    Ok(Versioned {
        key: doc.key,
        value,
        version: doc.version,
    })
}
