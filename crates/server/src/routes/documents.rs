//! Booking documents: multipart upload with limits, listing, download, admin verification.

use crate::error::ProblemBody;
use actix_multipart::MultipartError;
use actix_multipart::form::bytes::Bytes as FileField;
use actix_multipart::form::text::Text;
use actix_multipart::form::{MultipartForm, MultipartFormConfig};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use kavling_core::FieldError;
use kavling_core::services::bookings::Viewer;
use kavling_core::services::documents::DocumentView;
use kavling_core::services::documents::{
    DocumentVerification, MAX_DOCUMENT_BYTES, NewDocument, download_name, file_too_large,
};
use kavling_core::services::users::Access;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, RequestCtx};
use crate::state::AppState;

/// Room for the text fields and multipart framing beyond the file itself.
const FORM_OVERHEAD: usize = 64 * 1024;

/// `POST /bookings/{id}/documents` form; fields beyond these are refused (400).
#[derive(MultipartForm)]
#[multipart(deny_unknown_fields)]
pub struct DocumentUpload {
    /// The file (PDF, JPEG or PNG), at most 5 MiB.
    #[multipart(limit = "5MiB")]
    file: FileField,
    /// `ktp`, `npwp`, `slip-gaji`, `kk` or `lainnya`.
    // Text limits far above what the schema allows: an over-long value reaches the validator
    // (422, the schema's maxLength), and only a form too big as a whole is 413.
    #[multipart(rename = "documentType", limit = "16KiB")]
    document_type: Text<String>,
    /// A label for humans.
    #[multipart(rename = "documentName", limit = "16KiB")]
    document_name: Text<String>,
}

/// The upload form as the API document shows it (the handler reads [`DocumentUpload`]).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct DocumentUploadDoc {
    /// The file: PDF, JPEG or PNG (judged by content), at most 5 MiB.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// One of `ktp`, `npwp`, `slip-gaji`, `kk`, `lainnya`.
    #[schema(schema_with = kavling_core::services::documents::document_type_schema)]
    document_type: String,
    /// A label for humans.
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 200
    )]
    document_name: String,
}

/// The form limits of the upload route: the whole form and what may be held in memory.
pub fn upload_config() -> MultipartFormConfig {
    MultipartFormConfig::default()
        .total_limit(MAX_DOCUMENT_BYTES + FORM_OVERHEAD)
        .memory_limit(MAX_DOCUMENT_BYTES + FORM_OVERHEAD)
        .error_handler(multipart_error)
}

/// Maps multipart errors to problems (the form config's error handler).
pub(crate) fn multipart_error(err: MultipartError, _req: &HttpRequest) -> actix_web::Error {
    let api = multipart_problem(&err);
    actix_web::error::InternalError::from_response(err, api.error_response()).into()
}

/// The parsed form, or the response its error deserves. Content-type errors skip the form
/// config's handler, so they are mapped here like every other multipart error.
pub(crate) fn parsed_form<T: actix_multipart::form::MultipartCollect>(
    form: Result<MultipartForm<T>, actix_web::Error>,
) -> Result<T, Box<HttpResponse>> {
    match form {
        Ok(f) => Ok(f.into_inner()),
        Err(e) => Err(Box::new(match e.as_error::<MultipartError>() {
            Some(m) => multipart_problem(m).error_response(),
            None => e.error_response(),
        })),
    }
}

/// Over a limit 413, not multipart 415, missing field 422, anything else 400.
pub(crate) fn multipart_problem(err: &MultipartError) -> ApiError {
    let too_large = |e: &MultipartError| match e {
        MultipartError::Payload(actix_web::error::PayloadError::Overflow) => true,
        MultipartError::Field { source, .. } => {
            source.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE
        }
        _ => false,
    };
    if too_large(err) {
        ApiError::from(file_too_large())
    } else {
        match err {
            MultipartError::ContentTypeMissing
            | MultipartError::ContentTypeParse
            | MultipartError::ContentTypeIncompatible => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the document as multipart/form-data",
            ),
            MultipartError::MissingField(name) => ApiError::Problem {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "validation_failed",
                detail: format!("{name}: required"),
                errors: vec![FieldError::new(name, "required", "this field is required")],
            },
            other => ApiError::bad_request(format!("the form could not be read: {other}")),
        }
    }
}

/// `POST /bookings/{id}/documents` (ADMIN or verified MARKETING owning the booking).
#[utoipa::path(post, path = "/api/v1/bookings/{id}/documents", tag = "bookings", security(("bearer" = ["ADMIN", "MARKETING with approved e-KYC"])), params(("id" = Uuid, Path, description = "Booking id")),
    request_body(content = DocumentUploadDoc, content_type = "multipart/form-data"),
    responses((status = 201, body = DocumentView), (status = 404, description = "Not found, or its booking deleted (`not_found`)", body = ProblemBody),
        (status = 413, description = "Over 5 MiB (`file_too_large`)", body = ProblemBody), (status = 415, description = "Not a PDF, JPEG or PNG (`unsupported_media_type`)", body = ProblemBody), (status = 422, description = "Validation failed (`validation_failed`, with field errors)", body = ProblemBody)))]
pub async fn upload(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    path: web::Path<Uuid>,
    form: Result<MultipartForm<DocumentUpload>, actix_web::Error>,
) -> ApiResult<HttpResponse> {
    let user = state
        .services
        .require(&auth.0, Access::VerifiedStaff)
        .await?;
    let form = match parsed_form(form) {
        Ok(f) => f,
        Err(res) => return Ok(*res),
    };
    let doc = state
        .services
        .upload_document(
            &ctx.actor(&user),
            Viewer::of(&user),
            path.into_inner(),
            NewDocument {
                document_type: form.document_type.into_inner(),
                document_name: form.document_name.into_inner(),
                data: form.file.data.to_vec(),
            },
        )
        .await?;
    Ok(HttpResponse::Created().json(doc))
}

/// `GET /bookings/{id}/documents` (staff).
#[utoipa::path(get, path = "/api/v1/bookings/{id}/documents", tag = "bookings", security(("bearer" = ["ADMIN", "MARKETING"])), params(("id" = Uuid, Path, description = "Booking id")),
    responses((status = 200, body = Vec<DocumentView>), (status = 404, description = "Not found, or its booking deleted (`not_found`)", body = ProblemBody)))]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let user = state.services.require(&auth.0, Access::Staff).await?;
    let docs = state
        .services
        .list_documents(Viewer::of(&user), path.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(docs))
}

/// `GET /booking-documents/{id}/file` (staff): always a download, never rendered inline.
#[utoipa::path(get, path = "/api/v1/booking-documents/{id}/file", tag = "bookings", security(("bearer" = ["ADMIN", "MARKETING"])), params(("id" = Uuid, Path, description = "Document id")),
    responses((status = 200, description = "The file, as an attachment", content_type = "application/octet-stream", body = Vec<u8>), (status = 404, description = "Not found, or its booking deleted (`not_found`)", body = ProblemBody)))]
pub async fn file(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let user = state.services.require(&auth.0, Access::Staff).await?;
    let (doc, data) = state
        .services
        .document_file(Viewer::of(&user), path.into_inner())
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, doc.content_type.clone()))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", download_name(&doc)),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // Identity documents: never kept by shared caches.
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .body(data))
}

/// `PATCH /booking-documents/{id}` (admin).
#[utoipa::path(patch, path = "/api/v1/booking-documents/{id}", tag = "bookings", security(("bearer" = ["ADMIN"])), request_body = DocumentVerification, params(("id" = Uuid, Path, description = "Document id")),
    responses((status = 200, body = DocumentView), (status = 404, description = "Not found, or its booking deleted (`not_found`)", body = ProblemBody), (status = 422, description = "Validation failed (`validation_failed`, with field errors)", body = ProblemBody)))]
pub async fn verify(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    path: web::Path<Uuid>,
    body: web::Json<DocumentVerification>,
) -> ApiResult<HttpResponse> {
    let admin = state.services.require(&auth.0, Access::Admin).await?;
    let doc = state
        .services
        .verify_document(
            &ctx.actor(&admin),
            Viewer::of(&admin),
            path.into_inner(),
            body.into_inner(),
        )
        .await?;
    Ok(HttpResponse::Ok().json(doc))
}
