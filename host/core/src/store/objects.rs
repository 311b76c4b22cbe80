//! Tenant-defined custom objects: their schemas, stored as JSON field lists.

use sqlx::Row;

use super::{Db, StoreError, StoreResult, Tx, time};
use crate::records::schema::{FieldDef, ObjectSchema};

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<ObjectSchema> {
    let fields: String = row.try_get("fields")?;
    Ok(ObjectSchema {
        name: row.try_get("name")?,
        label: row.try_get("label")?,
        standard: false,
        fields: serde_json::from_str::<Vec<FieldDef>>(&fields)
            .map_err(|e| StoreError::Corrupt(format!("custom object fields: {e}")))?,
    })
}

impl Db {
    /// A custom object's schema.
    pub async fn custom_object(&self, tenant: &str, name: &str) -> StoreResult<Option<ObjectSchema>> {
        let row = sqlx::query("SELECT name, label, fields FROM object_types WHERE tenant_id = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// All custom objects of a tenant, by name.
    pub async fn custom_objects(&self, tenant: &str) -> StoreResult<Vec<ObjectSchema>> {
        let rows = sqlx::query("SELECT name, label, fields FROM object_types WHERE tenant_id = $1 ORDER BY name")
            .bind(tenant)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Create a custom object (conflict if the name is taken).
    pub async fn insert_custom_object(&self, tx: &mut Tx<'_>, tenant: &str, schema: &ObjectSchema) -> StoreResult<()> {
        let now = time::now();
        let fields = serde_json::to_string(&schema.fields).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let result = sqlx::query(
            "INSERT INTO object_types (tenant_id, name, label, fields, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 1, $5, $5)",
        )
        .bind(tenant)
        .bind(&schema.name)
        .bind(&schema.label)
        .bind(fields)
        .bind(&now)
        .execute(&mut **tx)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if super::is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "an object named `{}` already exists",
                schema.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Replace a custom object's label and fields.
    pub async fn update_custom_object(&self, tx: &mut Tx<'_>, tenant: &str, schema: &ObjectSchema) -> StoreResult<()> {
        let fields = serde_json::to_string(&schema.fields).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let done = sqlx::query(
            "UPDATE object_types SET label = $3, fields = $4, version = version + 1, updated_at = $5 \
             WHERE tenant_id = $1 AND name = $2",
        )
        .bind(tenant)
        .bind(&schema.name)
        .bind(&schema.label)
        .bind(fields)
        .bind(time::now())
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "there is no custom object `{}`",
                schema.name
            )));
        }
        Ok(())
    }

    /// Delete a custom object that has no records (live or deleted).
    pub async fn delete_custom_object(&self, tx: &mut Tx<'_>, tenant: &str, name: &str) -> StoreResult<()> {
        let used: Option<String> =
            sqlx::query_scalar("SELECT id FROM records WHERE tenant_id = $1 AND object = $2 LIMIT 1")
                .bind(tenant)
                .bind(name)
                .fetch_optional(&mut **tx)
                .await?;
        if used.is_some() {
            return Err(StoreError::Conflict(format!(
                "`{name}` still has records; delete them first"
            )));
        }
        let done = sqlx::query("DELETE FROM object_types WHERE tenant_id = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .execute(&mut **tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("there is no custom object `{name}`")));
        }
        Ok(())
    }
}
