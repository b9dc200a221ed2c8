//! Payments after the booking: a booking's schedule of invoices, invoice lists and export,
//! payments with proof uploads, their verification, and the proof download.

use actix_multipart::form::bytes::Bytes as FileField;
use actix_multipart::form::text::Text;
use actix_multipart::form::{MultipartForm, MultipartFormConfig};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use kavling_core::entities::invoices;
use kavling_core::list::{ListQuery, Page};
use kavling_core::services::bookings::Viewer;
use kavling_core::services::documents::MAX_DOCUMENT_BYTES;
use kavling_core::services::payments::{
    INVOICE_LIST, InvoiceView, NewPayment, PaymentDecision, PaymentView, ScheduleInput,
};
use kavling_core::services::users::Access;
use kavling_core::{CoreError, Services};
use uuid::Uuid;

use crate::csv_export::{CsvSource, cell, csv_response, ts};
use crate::error::{ApiResult, ProblemBody};
use crate::extract::{Auth, RequestCtx};
use crate::routes::documents::{multipart_error, parsed_form};
use crate::state::AppState;

/// Room for the text fields and multipart framing beyond the file itself.
const FORM_OVERHEAD: usize = 64 * 1024;

/// `POST /invoices/{id}/payments` form; fields beyond these are refused (400).
#[derive(MultipartForm)]
#[multipart(deny_unknown_fields)]
pub struct PaymentUpload {
    /// The proof (PDF, JPEG or PNG), at most 5 MiB.
    #[multipart(limit = "5MiB")]
    file: FileField,
    /// Rupiah.
    // Text limits far above any valid value: an over-long one reaches the validator (422), and
    // only a form too big as a whole is 413.
    #[multipart(limit = "16KiB")]
    amount: Text<String>,
    /// TRANSFER, CASH, CHECK or CREDIT.
    #[multipart(limit = "16KiB")]
    method: Text<String>,
    /// RFC 3339.
    #[multipart(rename = "paidAt", limit = "16KiB")]
    paid_at: Text<String>,
}

/// The payment form as the API document shows it (the handler reads [`PaymentUpload`]).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct PaymentUploadDoc {
    /// The proof: PDF, JPEG or PNG (judged by content), at most 5 MiB.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Rupiah, 1 to 10,000,000,000,000; with what is paid or awaiting verification, at most the
    /// invoice's amount.
    #[schema(minimum = 1, maximum = 10_000_000_000_000_i64)]
    amount: i64,
    /// How it was paid.
    #[schema(value_type = kavling_core::domain::PaymentMethod)]
    method: String,
    /// When it was paid (RFC 3339).
    #[schema(format = DateTime)]
    paid_at: String,
}

/// The form limits of the payment upload route.
pub fn upload_config() -> MultipartFormConfig {
    MultipartFormConfig::default()
        .total_limit(MAX_DOCUMENT_BYTES + FORM_OVERHEAD)
        .memory_limit(MAX_DOCUMENT_BYTES + FORM_OVERHEAD)
        .error_handler(multipart_error)
}

/// `POST /bookings/{id}/schedule` (ADMIN or the booking's verified marketing user).
#[utoipa::path(post, path = "/api/v1/bookings/{id}/schedule", tag = "payments", operation_id = "schedule_invoices",
    security(("bearer" = ["ADMIN", "MARKETING with approved e-KYC"])), request_body = ScheduleInput, params(("id" = Uuid, Path, description = "Booking id")),
    description = "Adds invoices to the booking's payment schedule (posting again adds more). Numbers are `INV-<year>-<n>`, gap-free per year (WIB).",
    responses((status = 201, description = "The created invoices", body = Vec<InvoiceView>), (status = 403, description = "Not an admin or the booking's marketing user (`forbidden`), or e-KYC not approved (`kyc_required`)", body = ProblemBody), (status = 404, description = "Not found, or its booking deleted (`not_found`)", body = ProblemBody),
        (status = 409, description = "The booking is CANCELLED or COMPLETED (`invalid_transition`), or already has its BOOKING_FEE invoice and the request adds one (`duplicate_booking_fee`)", body = ProblemBody), (status = 422, description = "Validation failed (`validation_failed`: 1..60 items, amounts 1..10^13, at most one BOOKING_FEE item)", body = ProblemBody)))]
pub async fn schedule(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    path: web::Path<Uuid>,
    body: web::Json<ScheduleInput>,
) -> ApiResult<HttpResponse> {
    let (id, input) = (path.into_inner(), body.into_inner());
    let invoices = state
        .write(move |services| async move {
            let user = services.require(&auth.0, Access::VerifiedStaff).await?;
            services
                .schedule_invoices(&ctx.actor(&user), Viewer::of(&user), id, input)
                .await
        })
        .await?;
    Ok(HttpResponse::Created().json(invoices))
}

/// `GET /bookings/{id}/invoices` (staff; list conventions).
#[utoipa::path(get, path = "/api/v1/bookings/{id}/invoices", tag = "payments", operation_id = "list_booking_invoices",
    security(("bearer" = ["ADMIN", "MARKETING"])), params(("id" = Uuid, Path, description = "Booking id")),
    responses((status = 200, body = Page<InvoiceView>), (status = 404, description = "Not found, or its booking deleted (`not_found`)", body = ProblemBody)))]
pub async fn booking_invoices(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<Uuid>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let user = state.services.require(&auth.0, Access::Staff).await?;
    let page = state
        .services
        .list_invoices(
            Viewer::of(&user),
            req.query_string(),
            Some(path.into_inner()),
        )
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /invoices` (staff; admins all, marketing their own bookings').
#[utoipa::path(get, path = "/api/v1/invoices", tag = "payments", operation_id = "list_invoices", security(("bearer" = ["ADMIN", "MARKETING"])),
    responses((status = 200, body = Page<InvoiceView>)))]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let user = state.services.require(&auth.0, Access::Staff).await?;
    let page = state
        .services
        .list_invoices(Viewer::of(&user), req.query_string(), None)
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /invoices/{id}` (staff).
#[utoipa::path(get, path = "/api/v1/invoices/{id}", tag = "payments", operation_id = "get_invoice", security(("bearer" = ["ADMIN", "MARKETING"])), params(("id" = Uuid, Path, description = "Invoice id")),
    responses((status = 200, body = InvoiceView), (status = 404, description = "Not found, or its booking deleted (`not_found`)", body = ProblemBody)))]
pub async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let user = state.services.require(&auth.0, Access::Staff).await?;
    let invoice = state
        .services
        .get_invoice(Viewer::of(&user), path.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(invoice))
}

/// `POST /invoices/{id}/payments` (ADMIN or the booking's verified marketing user).
#[utoipa::path(post, path = "/api/v1/invoices/{id}/payments", tag = "payments", operation_id = "submit_payment",
    security(("bearer" = ["ADMIN", "MARKETING with approved e-KYC"])), params(("id" = Uuid, Path, description = "Invoice id")),
    request_body(content = PaymentUploadDoc, content_type = "multipart/form-data"),
    responses((status = 201, body = PaymentView), (status = 403, description = "Not an admin or the booking's marketing user (`forbidden`), or e-KYC not approved (`kyc_required`)", body = ProblemBody), (status = 404, description = "Not found, or its booking deleted (`not_found`)", body = ProblemBody),
        (status = 409, description = "The invoice is PAID or VOID (`invoice_not_payable`), the booking's hold expired (`hold_expired`: it is cancelled now)", body = ProblemBody),
        (status = 413, description = "Over 5 MiB (`file_too_large`)", body = ProblemBody), (status = 415, description = "Not a PDF, JPEG or PNG (`unsupported_media_type`)", body = ProblemBody), (status = 422, description = "Validation failed (`validation_failed`), including an amount more than the invoice has left to pay, counting payments awaiting verification (error code `overpayment` on `amount`)", body = ProblemBody)))]
pub async fn submit(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    path: web::Path<Uuid>,
    form: Result<MultipartForm<PaymentUpload>, actix_web::Error>,
) -> ApiResult<HttpResponse> {
    let user = state
        .services
        .require(&auth.0, Access::VerifiedStaff)
        .await?;
    let form = match parsed_form(form) {
        Ok(f) => f,
        Err(res) => return Ok(*res),
    };
    let input = NewPayment {
        amount: form.amount.into_inner(),
        method: form.method.into_inner(),
        paid_at: form.paid_at.into_inner(),
        data: form.file.data.to_vec(),
    };
    let id = path.into_inner();
    let payment = state
        .write(move |services| async move {
            services
                .submit_payment(&ctx.actor(&user), Viewer::of(&user), id, input)
                .await
        })
        .await?;
    Ok(HttpResponse::Created().json(payment))
}

/// `GET /payments` (staff; list conventions): the verification queue with
/// `filters[status][$eq]=AWAITING_VERIFICATION`.
#[utoipa::path(get, path = "/api/v1/payments", tag = "payments", operation_id = "list_payments", security(("bearer" = ["ADMIN", "MARKETING"])),
    responses((status = 200, body = Page<PaymentView>)))]
pub async fn list_payments(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let user = state.services.require(&auth.0, Access::Staff).await?;
    let page = state
        .services
        .list_payments(Viewer::of(&user), req.query_string())
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /payments/{id}` (staff): with the rejection reason, if any.
#[utoipa::path(get, path = "/api/v1/payments/{id}", tag = "payments", operation_id = "get_payment", security(("bearer" = ["ADMIN", "MARKETING"])), params(("id" = Uuid, Path, description = "Payment id")),
    responses((status = 200, body = PaymentView), (status = 404, description = "Not found, or its booking deleted (`not_found`)", body = ProblemBody)))]
pub async fn get_payment(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let user = state.services.require(&auth.0, Access::Staff).await?;
    let payment = state
        .services
        .get_payment(Viewer::of(&user), path.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(payment))
}

/// `PATCH /payments/{id}` (ADMIN): verify or reject, once.
#[utoipa::path(patch, path = "/api/v1/payments/{id}", tag = "payments", operation_id = "decide_payment",
    security(("bearer" = ["ADMIN"])), request_body = PaymentDecision, params(("id" = Uuid, Path, description = "Payment id")),
    description = "Verifying adds the amount to the invoice; paid in full it is PAID, a paid BOOKING_FEE makes the booking ACTIVE and a fully paid schedule COMPLETED (unit SOLD).",
    responses((status = 200, body = PaymentView), (status = 404, description = "Not found, or its booking deleted (`not_found`)", body = ProblemBody),
        (status = 409, description = "Already verified or rejected (`payment_already_decided`), the invoice is not payable (`invoice_not_payable`), or the hold expired (`hold_expired`)", body = ProblemBody),
        (status = 422, description = "Validation failed (`validation_failed`: `reason` required when rejecting, at most 500 characters)", body = ProblemBody)))]
pub async fn decide(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    path: web::Path<Uuid>,
    body: web::Json<PaymentDecision>,
) -> ApiResult<HttpResponse> {
    let (id, input) = (path.into_inner(), body.into_inner());
    let payment = state
        .write(move |services| async move {
            let admin = services.require(&auth.0, Access::Admin).await?;
            services
                .decide_payment(&ctx.actor(&admin), Viewer::of(&admin), id, input)
                .await
        })
        .await?;
    Ok(HttpResponse::Ok().json(payment))
}

/// `GET /payments/{id}/proof` (ADMIN or the booking's marketing user): always a download.
#[utoipa::path(get, path = "/api/v1/payments/{id}/proof", tag = "payments", operation_id = "payment_proof", security(("bearer" = ["ADMIN", "MARKETING"])), params(("id" = Uuid, Path, description = "Payment id")),
    responses((status = 200, description = "The proof, as an attachment", content_type = "application/octet-stream", body = Vec<u8>), (status = 404, description = "Not found, or its booking deleted (`not_found`)", body = ProblemBody)))]
pub async fn proof(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let user = state.services.require(&auth.0, Access::Staff).await?;
    let (payment, data) = state
        .services
        .payment_proof(Viewer::of(&user), path.into_inner())
        .await?;
    let ext = payment
        .proof_storage_name
        .rsplit('.')
        .next()
        .unwrap_or("bin");
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, payment.proof_content_type.clone()))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"payment-{}.{ext}\"", payment.id),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .body(data))
}

/// `GET /invoices/export.csv` (staff): the filtered invoices as CSV, streamed page by page.
#[utoipa::path(get, path = "/api/v1/invoices/export.csv", tag = "payments", operation_id = "export_invoices", security(("bearer" = ["ADMIN", "MARKETING"])),
    responses((status = 200, description = "The filtered invoices as CSV, streamed", content_type = "text/csv", body = String)))]
pub async fn export_csv(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let user = state.services.require(&auth.0, Access::Staff).await?;
    // Parsed up front so a bad filter is a 400, not a broken stream.
    let query = ListQuery::parse(req.query_string(), &INVOICE_LIST)?;
    let source = InvoiceExport {
        services: state.services.clone(),
        viewer: Viewer::of(&user),
        query,
    };
    Ok(csv_response(source, "invoices.csv"))
}

/// The filtered invoices a staff member may see, as CSV rows.
struct InvoiceExport {
    services: Services,
    viewer: Viewer,
    query: ListQuery<invoices::Column>,
}

impl CsvSource for InvoiceExport {
    const COLUMNS: &'static [&'static str] = &[
        "invoiceNumber",
        "bookingCode",
        "kind",
        "amount",
        "paidAmount",
        "dueDate",
        "status",
        "paidAt",
        "createdAt",
        "bookingId",
    ];
    const WHAT: &'static str = "invoices";

    async fn page(
        &self,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<(Uuid, Vec<String>)>, CoreError> {
        let rows = self
            .services
            .export_invoices_page(self.viewer, &self.query, after, limit)
            .await?;
        Ok(rows
            .iter()
            .map(|(i, code)| {
                let cells = vec![
                    cell(&i.invoice_number),
                    cell(code),
                    i.kind.clone(),
                    i.amount.to_string(),
                    i.paid_amount.to_string(),
                    i.due_date.to_string(),
                    i.status.clone(),
                    i.paid_at.map(ts).unwrap_or_default(),
                    ts(i.created_at),
                    i.booking_id.to_string(),
                ];
                (i.id, cells)
            })
            .collect())
    }
}
