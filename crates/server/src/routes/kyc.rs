//! e-KYC: marketing staff upload their documents; only admins may download them.

use crate::error::ProblemBody;
use actix_multipart::MultipartError;
use actix_multipart::form::MultipartForm;
use actix_multipart::form::bytes::Bytes;
use actix_multipart::form::text::Text;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use kavling_core::services::kyc::{KycDocument, KycSubmission, MAX_KYC_IMAGE_BYTES};
use kavling_core::services::users::Access;
use kavling_core::services::users::UserView;
use kavling_core::{CoreError, FieldError};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, RequestCtx};
use crate::state::AppState;

/// Largest whole KYC form: three images and a little text.
pub const KYC_FORM_LIMIT: usize = 3 * MAX_KYC_IMAGE_BYTES + 64 * 1024;

/// `POST /me/kyc` multipart form; fields beyond these are refused (400).
#[derive(MultipartForm)]
#[multipart(deny_unknown_fields)]
pub struct KycForm {
    /// ID card (KTP) image.
    #[multipart(rename = "idCard", limit = "5MiB")]
    pub id_card: Bytes,
    /// Selfie image.
    #[multipart(limit = "5MiB")]
    pub selfie: Bytes,
    /// Office ID card image.
    #[multipart(rename = "officeIdCard", limit = "5MiB")]
    pub office_id_card: Bytes,
    /// The agency. The limit is far above the schema's 200 characters, so an over-long name
    /// reaches the validator (422); only a form too big as a whole is 413.
    #[multipart(rename = "companyName", limit = "16KiB")]
    pub company_name: Text<String>,
}

/// The KYC form as the API document shows it (the handler reads [`KycForm`]).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct KycUploadDoc {
    /// The national ID card (KTP), JPEG or PNG, at most 5 MiB.
    #[schema(value_type = String, format = Binary)]
    id_card: Vec<u8>,
    /// A selfie holding the ID card, JPEG or PNG, at most 5 MiB.
    #[schema(value_type = String, format = Binary)]
    selfie: Vec<u8>,
    /// The office ID card, JPEG or PNG, at most 5 MiB.
    #[schema(value_type = String, format = Binary)]
    office_id_card: Vec<u8>,
    /// The agency or company.
    #[schema(pattern = r"[^\s\x85]", max_length = 200)]
    company_name: String,
}

/// Maps multipart failures to problems: over a limit 413, not multipart 415, missing field 422.
pub fn multipart_error(err: MultipartError, _req: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        MultipartError::Payload(actix_web::error::PayloadError::Overflow) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            format!("each image may be at most {MAX_KYC_IMAGE_BYTES} bytes"),
        ),
        MultipartError::ContentTypeMissing
        | MultipartError::ContentTypeParse
        | MultipartError::ContentTypeIncompatible => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send multipart/form-data with idCard, selfie, officeIdCard and companyName",
        ),
        MultipartError::MissingField(f) => {
            ApiError::Core(CoreError::Validation(vec![FieldError::new(
                f,
                "required",
                format!("{f} is required"),
            )]))
        }
        other => ApiError::bad_request(format!("the form could not be read: {other}")),
    };
    actix_web::error::InternalError::from_response(err, api.error_response()).into()
}

/// `POST /me/kyc` (MARKETING): 202 with the user, `kycStatus` PENDING.
#[utoipa::path(post, path = "/api/v1/me/kyc", tag = "auth", security(("bearer" = [])),
    request_body(content = KycUploadDoc, content_type = "multipart/form-data"),
    responses((status = 202, description = "Submitted; kycStatus is PENDING", body = UserView), (status = 403, description = "Wrong role (`forbidden`) or e-KYC not approved (`kyc_required`)", body = ProblemBody),
        (status = 413, description = "An image over 5 MiB (`file_too_large`)", body = ProblemBody),
        (status = 415, description = "Not a JPEG or PNG (`unsupported_media_type`)", body = ProblemBody), (status = 422, description = "Validation failed (`validation_failed`)", body = ProblemBody)))]
pub async fn submit(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    form: MultipartForm<KycForm>,
) -> ApiResult<HttpResponse> {
    let user = state
        .services
        .require(&auth.0, Access::Authenticated)
        .await?;
    let form = form.into_inner();
    let view = state
        .services
        .submit_kyc(
            &ctx.actor(&user),
            user.id,
            KycSubmission {
                company_name: form.company_name.into_inner(),
                id_card: form.id_card.data.to_vec(),
                selfie: form.selfie.data.to_vec(),
                office_id_card: form.office_id_card.data.to_vec(),
            },
        )
        .await?;
    Ok(HttpResponse::Accepted().json(view))
}

/// `GET /admin/users/{id}/kyc/{document}` (ADMIN): the image as a download, never cached.
#[utoipa::path(get, path = "/api/v1/admin/users/{id}/kyc/{document}", tag = "admin", security(("bearer" = ["ADMIN"])),
    params(("id" = Uuid, Path, description = "User id"), ("document" = KycDocument, Path, description = "idCard, selfie or officeIdCard")),
    responses((status = 200, description = "The image, as an attachment", content_type = "application/octet-stream", body = Vec<u8>), (status = 404, description = "Not found", body = ProblemBody)))]
pub async fn document(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(Uuid, String)>,
) -> ApiResult<HttpResponse> {
    state.services.require(&auth.0, Access::Admin).await?;
    let (user_id, doc) = path.into_inner();
    let doc = KycDocument::parse(&doc)
        .ok_or_else(|| ApiError::not_found("document must be idCard, selfie or officeIdCard"))?;
    let file = state.services.kyc_document(user_id, doc).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(file.mime)))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", file.file_name),
        ))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(file.bytes))
}
