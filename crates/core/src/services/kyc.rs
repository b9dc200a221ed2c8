//! e-KYC documents of marketing staff: an ID card (KTP), a selfie and an office ID card. They
//! are sensitive personal data (UU PDP): checked by content (JPEG or PNG only), stored under
//! generated names in a private directory, never served publicly, readable only by admins.

use std::path::{Path, PathBuf};

use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, ActorRef, AuditEntry};
use crate::db::begin_write;
use crate::domain::{KycStatus, Role};
use crate::entities::users;
use crate::error::{CoreError, CoreResult};
use crate::services::users::UserView;

/// Largest accepted KYC image: 5 MiB.
pub const MAX_KYC_IMAGE_BYTES: usize = 5 * 1024 * 1024;
/// Longest company name.
pub const MAX_COMPANY_NAME_LEN: usize = 200;
/// Subdirectory of the storage directory holding KYC images.
pub const KYC_SUBDIR: &str = "kyc";

/// One of the three KYC documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum KycDocument {
    /// The national ID card (KTP).
    IdCard,
    /// A selfie holding the ID card.
    Selfie,
    /// The office (agency) ID card.
    OfficeIdCard,
}

impl KycDocument {
    /// Parses the path/field spelling (`idCard`, `selfie`, `officeIdCard`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "idCard" => Some(KycDocument::IdCard),
            "selfie" => Some(KycDocument::Selfie),
            "officeIdCard" => Some(KycDocument::OfficeIdCard),
            _ => None,
        }
    }

    /// The field spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KycDocument::IdCard => "idCard",
            KycDocument::Selfie => "selfie",
            KycDocument::OfficeIdCard => "officeIdCard",
        }
    }
}

/// An accepted image type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// image/jpeg
    Jpeg,
    /// image/png
    Png,
}

impl ImageKind {
    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Png => "image/png",
        }
    }

    fn ext(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "jpg",
            ImageKind::Png => "png",
        }
    }
}

/// Checks a KYC image by size and by content (magic bytes, never the client's type or name).
pub fn check_image(field: &str, bytes: &[u8]) -> CoreResult<ImageKind> {
    if bytes.len() > MAX_KYC_IMAGE_BYTES {
        return Err(CoreError::TooLarge {
            code: "file_too_large",
            message: format!("{field} is larger than {MAX_KYC_IMAGE_BYTES} bytes"),
        });
    }
    match infer::get(bytes).map(|t| t.mime_type()) {
        Some("image/jpeg") => Ok(ImageKind::Jpeg),
        Some("image/png") => Ok(ImageKind::Png),
        _ => Err(CoreError::UnsupportedMediaType {
            code: "unsupported_media_type",
            message: format!("{field} must be a JPEG or PNG image"),
        }),
    }
}

/// `POST /me/kyc` input: the three images and the company name.
#[derive(Clone, Debug)]
pub struct KycSubmission {
    /// The agency the marketing user works for.
    pub company_name: String,
    /// ID card image bytes.
    pub id_card: Vec<u8>,
    /// Selfie image bytes.
    pub selfie: Vec<u8>,
    /// Office ID card image bytes.
    pub office_id_card: Vec<u8>,
}

/// A stored KYC document read back for an admin.
#[derive(Clone, Debug)]
pub struct KycFile {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Its MIME type (by content).
    pub mime: &'static str,
    /// A download name (`<document>-<user id>.<ext>`), never the client's.
    pub file_name: String,
}

/// Writes a file readable only by the owner, under a fresh random name.
async fn write_private(dir: &Path, kind: ImageKind, bytes: Vec<u8>) -> CoreResult<PathBuf> {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random)
        .map_err(|e| CoreError::Internal(format!("no randomness for a file name: {e}")))?;
    let path = dir.join(format!("{}.{}", crate::pii::hex(&random), kind.ext()));
    let p = path.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&p)?;
        f.write_all(&bytes)?;
        f.sync_all()
    })
    .await
    .map_err(|e| CoreError::Internal(format!("storing a KYC image failed: {e}")))?
    .map_err(|e| CoreError::Internal(format!("storing a KYC image failed: {e}")))?;
    Ok(path)
}

async fn remove_files(paths: &[PathBuf]) {
    for p in paths {
        if let Err(e) = tokio::fs::remove_file(p).await {
            tracing::warn!(path = %p.display(), error = %e, "could not remove a KYC file");
        }
    }
}

impl Services {
    fn kyc_dir(&self) -> PathBuf {
        self.storage_dir.join(KYC_SUBDIR)
    }

    /// `POST /me/kyc` (MARKETING): stores the three images privately, sets `kycStatus` to
    /// PENDING (and `isVerified` false until an admin decides), with an audit row. Files of an
    /// earlier submission are deleted once the new one is committed.
    pub async fn submit_kyc(
        &self,
        actor: &ActorRef,
        user_id: Uuid,
        input: KycSubmission,
    ) -> CoreResult<UserView> {
        let company_name = input.company_name.trim().to_owned();
        if company_name.is_empty() || company_name.chars().count() > MAX_COMPANY_NAME_LEN {
            return Err(CoreError::invalid_field(
                "companyName",
                "required",
                format!("enter a company name of at most {MAX_COMPANY_NAME_LEN} characters"),
            ));
        }
        let id_kind = check_image("idCard", &input.id_card)?;
        let selfie_kind = check_image("selfie", &input.selfie)?;
        let office_kind = check_image("officeIdCard", &input.office_id_card)?;

        let dir = self.kyc_dir();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| CoreError::Internal(format!("cannot create the KYC directory: {e}")))?;
        let mut written = Vec::with_capacity(3);
        for (kind, bytes) in [
            (id_kind, input.id_card),
            (selfie_kind, input.selfie),
            (office_kind, input.office_id_card),
        ] {
            match write_private(&dir, kind, bytes).await {
                Ok(p) => written.push(p),
                Err(e) => {
                    remove_files(&written).await;
                    return Err(e);
                }
            }
        }
        match self
            .record_kyc_submission(actor, user_id, &company_name, &written)
            .await
        {
            Ok((view, old)) => {
                remove_files(&old).await;
                Ok(view)
            }
            Err(e) => {
                remove_files(&written).await;
                Err(e)
            }
        }
    }

    async fn record_kyc_submission(
        &self,
        actor: &ActorRef,
        user_id: Uuid,
        company_name: &str,
        files: &[PathBuf],
    ) -> CoreResult<(UserView, Vec<PathBuf>)> {
        let name = |i: usize| -> CoreResult<String> {
            files
                .get(i)
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .map(|n| format!("{KYC_SUBDIR}/{n}"))
                .ok_or_else(|| CoreError::Internal("a stored KYC file has no name".into()))
        };
        let (id_card, selfie, office) = (name(0)?, name(1)?, name(2)?);
        let txn = begin_write(&self.db).await?;
        let user = users::Entity::find_by_id(user_id)
            .one(&txn)
            .await?
            .ok_or(CoreError::NotFound("user"))?;
        if user.role != Role::Marketing.as_str() {
            return Err(CoreError::forbidden(
                "forbidden",
                "e-KYC is for marketing staff",
            ));
        }
        let old: Vec<PathBuf> = [
            &user.kyc_id_card_path,
            &user.kyc_selfie_path,
            &user.kyc_office_id_card_path,
        ]
        .into_iter()
        .flatten()
        .map(|p| self.storage_dir.join(p))
        .collect();
        let before = serde_json::json!({
            "isVerified": user.is_verified,
            "kycStatus": user.kyc_status,
            "companyName": user.company_name,
        });
        let now = self.clock.now();
        let mut active: users::ActiveModel = user.into();
        active.company_name = Set(Some(company_name.to_owned()));
        active.kyc_id_card_path = Set(Some(id_card));
        active.kyc_selfie_path = Set(Some(selfie));
        active.kyc_office_id_card_path = Set(Some(office));
        active.kyc_status = Set(KycStatus::Pending.as_str().to_owned());
        active.is_verified = Set(false);
        active.kyc_reason = Set(None);
        active.kyc_submitted_at = Set(Some(now));
        active.updated_at = Set(now);
        let updated = active.update(&txn).await?;
        audit::record(
            &txn,
            self.clock.as_ref(),
            actor,
            AuditEntry {
                action: "kyc.submitted",
                entity_type: "user",
                entity_id: user_id,
                old_values: Some(before),
                new_values: Some(serde_json::json!({
                    "isVerified": false,
                    "kycStatus": KycStatus::Pending.as_str(),
                    "companyName": company_name,
                })),
            },
        )
        .await?;
        txn.commit().await?;
        Ok((UserView::from(&updated), old))
    }

    /// Reads one KYC document of a user (the route allows ADMIN only).
    pub async fn kyc_document(&self, user_id: Uuid, doc: KycDocument) -> CoreResult<KycFile> {
        let user = self.user(user_id).await?;
        let stored = match doc {
            KycDocument::IdCard => user.kyc_id_card_path,
            KycDocument::Selfie => user.kyc_selfie_path,
            KycDocument::OfficeIdCard => user.kyc_office_id_card_path,
        }
        .ok_or(CoreError::NotFound("KYC document"))?;
        // Stored names are ours (`kyc/<hex>.<ext>`); refuse anything else rather than follow it.
        let name = stored
            .strip_prefix(&format!("{KYC_SUBDIR}/"))
            .filter(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'))
            .filter(|n| !n.starts_with('.'))
            .ok_or_else(|| CoreError::Internal("a stored KYC path is malformed".into()))?;
        let bytes = tokio::fs::read(self.kyc_dir().join(name))
            .await
            .map_err(|e| CoreError::Internal(format!("reading a KYC document failed: {e}")))?;
        let kind = check_image(doc.as_str(), &bytes)
            .map_err(|_| CoreError::Internal("a stored KYC document is not an image".into()))?;
        Ok(KycFile {
            file_name: format!("{}-{}.{}", doc.as_str(), user_id, kind.ext()),
            mime: kind.mime(),
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0";

    #[test]
    fn images_are_checked_by_content() {
        assert_eq!(check_image("selfie", PNG).unwrap(), ImageKind::Png);
        assert_eq!(check_image("selfie", JPEG).unwrap(), ImageKind::Jpeg);
        for bad in [&b"GIF89a......"[..], b"%PDF-1.7", b"<svg/>", b""] {
            assert!(matches!(
                check_image("selfie", bad),
                Err(CoreError::UnsupportedMediaType { .. })
            ));
        }
        let mut big = PNG.to_vec();
        big.resize(MAX_KYC_IMAGE_BYTES + 1, 0);
        assert!(matches!(
            check_image("selfie", &big),
            Err(CoreError::TooLarge { .. })
        ));
    }

    #[test]
    fn documents_parse() {
        for d in ["idCard", "selfie", "officeIdCard"] {
            assert_eq!(KycDocument::parse(d).map(KycDocument::as_str), Some(d));
        }
        assert_eq!(KycDocument::parse("../etc"), None);
    }
}
