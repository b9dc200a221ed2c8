//! Booking documents (KTP, NPWP, payslips...): typed by content, capped in size, stored under a
//! generated name (never the client's), and verified by an admin.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, ActorRef, AuditEntry};
use crate::db::begin_write;
use crate::entities::booking_documents;
use crate::error::{CoreError, CoreResult, FieldError};
use crate::services::bookings::Viewer;

/// Largest accepted document: 5 MiB.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024 * 1024;
/// The accepted `documentType` values.
pub const DOCUMENT_TYPES: &[&str] = &["ktp", "npwp", "slip-gaji", "kk", "lainnya"];

/// The schema of a document type: an enum of [`DOCUMENT_TYPES`].
pub fn document_type_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(DOCUMENT_TYPES.iter().copied()))
        .build()
}
/// The sub-directory of the storage directory holding booking documents.
pub const DOCUMENT_DIR: &str = "booking-documents";

/// A booking document as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DocumentView {
    /// Id.
    pub id: Uuid,
    /// The booking.
    pub booking_id: Uuid,
    /// `ktp`, `npwp`, `slip-gaji`, `kk` or `lainnya`.
    #[schema(schema_with = document_type_schema)]
    pub document_type: String,
    /// The name given by the uploader.
    pub document_name: String,
    /// `application/pdf`, `image/jpeg` or `image/png`, detected from the content.
    pub content_type: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// Whether an admin verified it.
    pub verified: bool,
    /// The admin who verified it.
    pub verified_by: Option<Uuid>,
    /// When.
    pub verified_date: Option<chrono::DateTime<chrono::Utc>>,
    /// Verification notes.
    pub notes: Option<String>,
    /// Who uploaded it.
    pub uploaded_by: Uuid,
    /// Uploaded.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<booking_documents::Model> for DocumentView {
    fn from(d: booking_documents::Model) -> Self {
        DocumentView {
            id: d.id,
            booking_id: d.booking_id,
            document_type: d.document_type,
            document_name: d.document_name,
            content_type: d.content_type,
            size_bytes: d.size_bytes,
            verified: d.verified,
            verified_by: d.verified_by,
            verified_date: d.verified_date,
            notes: d.notes,
            uploaded_by: d.uploaded_by,
            created_at: d.created_at,
        }
    }
}

/// An uploaded document, before it is checked.
#[derive(Clone, Debug)]
pub struct NewDocument {
    /// `documentType`.
    pub document_type: String,
    /// `documentName`.
    pub document_name: String,
    /// The file's bytes.
    pub data: Vec<u8>,
}

/// `PATCH /booking-documents/{id}` body.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DocumentVerification {
    /// Verified or not.
    pub verified: bool,
    /// Notes.
    #[schema(max_length = 2000)]
    pub notes: Option<String>,
}

/// The accepted type of a file, judged by its content: (MIME type, extension).
pub fn sniff(data: &[u8]) -> Option<(&'static str, &'static str)> {
    match infer::get(data)?.mime_type() {
        "application/pdf" => Some(("application/pdf", "pdf")),
        "image/jpeg" => Some(("image/jpeg", "jpg")),
        "image/png" => Some(("image/png", "png")),
        _ => None,
    }
}

/// A download file name made of the document's name (letters, digits, `-`, `_`) and extension.
pub fn download_name(d: &booking_documents::Model) -> String {
    let stem: String = d
        .document_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    let ext = d.storage_name.rsplit('.').next().unwrap_or("bin");
    let stem = if stem.is_empty() {
        "document".into()
    } else {
        stem
    };
    format!("{stem}.{ext}")
}

impl Services {
    /// `POST /bookings/{id}/documents`: checks type and size, writes the file under a generated
    /// name, then records it (removing the file again if the record fails).
    pub async fn upload_document(
        &self,
        actor: &ActorRef,
        viewer: Viewer,
        booking_id: Uuid,
        doc: NewDocument,
    ) -> CoreResult<DocumentView> {
        let booking = self.visible_booking(&self.db, viewer, booking_id).await?;
        let mut errors = Vec::new();
        let document_type = doc.document_type.trim().to_owned();
        if !DOCUMENT_TYPES.contains(&document_type.as_str()) {
            errors.push(FieldError::new(
                "documentType",
                "invalid",
                format!("one of {}", DOCUMENT_TYPES.join(", ")),
            ));
        }
        let document_name = doc.document_name.trim().to_owned();
        if document_name.is_empty()
            || document_name.chars().count() > 200
            || document_name.chars().any(char::is_control)
        {
            errors.push(FieldError::new(
                "documentName",
                "invalid",
                "1 to 200 printable characters",
            ));
        }
        if doc.data.is_empty() {
            errors.push(FieldError::new("file", "required", "the file is empty"));
        }
        if !errors.is_empty() {
            return Err(CoreError::Validation(errors));
        }
        if doc.data.len() > MAX_DOCUMENT_BYTES {
            return Err(file_too_large());
        }
        let (content_type, ext) =
            sniff(&doc.data).ok_or_else(|| CoreError::UnsupportedMediaType {
                code: "unsupported_media_type",
                message: "documents must be PDF, JPEG or PNG files".into(),
            })?;

        let id = Uuid::now_v7();
        let storage_name = format!("{}.{ext}", id.simple());
        let dir = self.storage_dir.join(DOCUMENT_DIR);
        let path = dir.join(&storage_name);
        let io = |e: std::io::Error| CoreError::Internal(format!("storing a document: {e}"));
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        tokio::fs::write(&path, &doc.data).await.map_err(io)?;

        let record = async {
            let txn = begin_write(&self.db).await?;
            let model = booking_documents::ActiveModel {
                id: Set(id),
                booking_id: Set(booking.id),
                document_type: Set(document_type),
                document_name: Set(document_name),
                storage_name: Set(storage_name),
                content_type: Set(content_type.to_owned()),
                size_bytes: Set(i64::try_from(doc.data.len()).unwrap_or(i64::MAX)),
                verified: Set(false),
                verified_by: Set(None),
                verified_date: Set(None),
                notes: Set(None),
                uploaded_by: Set(viewer.user_id),
                created_at: Set(self.clock.now()),
            }
            .insert(&txn)
            .await?;
            audit::record(
                &txn,
                self.clock.as_ref(),
                actor,
                AuditEntry {
                    action: "booking_document.uploaded",
                    entity_type: "booking_document",
                    entity_id: id,
                    old_values: None,
                    new_values: Some(serde_json::json!({
                        "bookingId": model.booking_id, "documentType": model.document_type,
                        "contentType": model.content_type, "sizeBytes": model.size_bytes,
                    })),
                },
            )
            .await?;
            txn.commit().await?;
            Ok::<_, CoreError>(model)
        };
        match record.await {
            Ok(model) => Ok(model.into()),
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                Err(e)
            }
        }
    }

    /// `GET /bookings/{id}/documents`.
    pub async fn list_documents(
        &self,
        viewer: Viewer,
        booking_id: Uuid,
    ) -> CoreResult<Vec<DocumentView>> {
        self.visible_booking(&self.db, viewer, booking_id).await?;
        Ok(booking_documents::Entity::find()
            .filter(booking_documents::Column::BookingId.eq(booking_id))
            .order_by_asc(booking_documents::Column::CreatedAt)
            .order_by_asc(booking_documents::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(DocumentView::from)
            .collect())
    }

    /// A document the viewer may see (through its booking), or 404.
    async fn visible_document(
        &self,
        viewer: Viewer,
        id: Uuid,
    ) -> CoreResult<booking_documents::Model> {
        let doc = booking_documents::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(CoreError::NotFound("document"))?;
        self.visible_booking(&self.db, viewer, doc.booking_id)
            .await
            .map_err(|_| CoreError::NotFound("document"))?;
        Ok(doc)
    }

    /// `GET /booking-documents/{id}/file`: the record and the stored bytes.
    pub async fn document_file(
        &self,
        viewer: Viewer,
        id: Uuid,
    ) -> CoreResult<(booking_documents::Model, Vec<u8>)> {
        let doc = self.visible_document(viewer, id).await?;
        // storage_name is generated by us (uuid + extension), so it cannot leave the directory.
        let path = self.storage_dir.join(DOCUMENT_DIR).join(&doc.storage_name);
        let data = tokio::fs::read(&path)
            .await
            .map_err(|e| CoreError::Internal(format!("reading document {id}: {e}")))?;
        Ok((doc, data))
    }

    /// `PATCH /booking-documents/{id}` (admin): sets or clears the verification.
    pub async fn verify_document(
        &self,
        actor: &ActorRef,
        admin: Viewer,
        id: Uuid,
        input: DocumentVerification,
    ) -> CoreResult<DocumentView> {
        if input
            .notes
            .as_ref()
            .is_some_and(|n| n.chars().count() > 2000)
        {
            return Err(CoreError::invalid_field(
                "notes",
                "too_long",
                "at most 2000 characters",
            ));
        }
        let txn = begin_write(&self.db).await?;
        let doc = booking_documents::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(CoreError::NotFound("document"))?;
        // A deleted booking's documents are gone from the API with it.
        self.visible_booking(&txn, admin, doc.booking_id)
            .await
            .map_err(|e| match e {
                CoreError::NotFound(_) => CoreError::NotFound("document"),
                e => e,
            })?;
        let old = serde_json::json!({"verified": doc.verified, "notes": doc.notes});
        let mut am: booking_documents::ActiveModel = doc.into();
        am.verified = Set(input.verified);
        am.verified_by = Set(input.verified.then_some(admin.user_id));
        am.verified_date = Set(input.verified.then(|| self.clock.now()));
        if input.notes.is_some() {
            am.notes = Set(input.notes);
        }
        let updated = am.update(&txn).await?;
        audit::record(
            &txn,
            self.clock.as_ref(),
            actor,
            AuditEntry {
                action: "booking_document.verified",
                entity_type: "booking_document",
                entity_id: id,
                old_values: Some(old),
                new_values: Some(
                    serde_json::json!({"verified": updated.verified, "notes": updated.notes}),
                ),
            },
        )
        .await?;
        txn.commit().await?;
        Ok(updated.into())
    }
}

/// 413 `file_too_large`.
pub fn file_too_large() -> CoreError {
    CoreError::TooLarge {
        code: "file_too_large",
        message: "documents are at most 5 MiB".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content_only() {
        assert_eq!(
            sniff(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj").map(|t| t.0),
            Some("application/pdf")
        );
        assert_eq!(
            sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F']).map(|t| t.1),
            Some("jpg")
        );
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").map(|t| t.0),
            Some("image/png")
        );
        assert_eq!(sniff(b"<svg xmlns='http://www.w3.org/2000/svg'/>"), None);
        assert_eq!(sniff(b"GIF89a\x01\x00"), None);
        assert_eq!(sniff(b"PK\x03\x04"), None);
        assert_eq!(sniff(b""), None);
    }
}
