//! Bookings: create, list, get, change, cancel, and the streamed CSV export.

use crate::error::ProblemBody;
use actix_web::{HttpRequest, HttpResponse, web};
use kavling_core::list::ListQuery;
use kavling_core::list::Page;
use kavling_core::services::bookings::BookingView;
use kavling_core::services::bookings::{
    BOOKING_LIST, BookingExportRow, BookingPatch, NewBooking, Viewer,
};
use kavling_core::services::users::Access;
use kavling_core::{CoreError, Services};
use uuid::Uuid;

use crate::csv_export::{CsvSource, cell, csv_response, ts};
use crate::error::ApiResult;
use crate::extract::{Auth, RequestCtx};
use crate::state::AppState;

/// `POST /bookings` (ADMIN or verified MARKETING).
#[utoipa::path(post, path = "/api/v1/bookings", tag = "bookings", security(("bearer" = ["ADMIN", "MARKETING with approved e-KYC"])), request_body = NewBooking,
    responses((status = 201, body = BookingView), (status = 404, description = "No such unit, or no such customer (`customerId`) (`not_found`)", body = ProblemBody),
        (status = 409, description = "`unit_not_available` (someone else won) or `duplicate_customer`", body = ProblemBody), (status = 422, description = "Validation failed (`validation_failed`, with field errors)", body = ProblemBody)))]
pub async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    body: web::Json<NewBooking>,
) -> ApiResult<HttpResponse> {
    let input = body.into_inner();
    let booking = state
        .write(move |services| async move {
            let user = services.require(&auth.0, Access::VerifiedStaff).await?;
            services
                .create_booking(&ctx.actor(&user), &user, input)
                .await
        })
        .await?;
    Ok(HttpResponse::Created().json(booking))
}

/// `GET /bookings` (staff; marketing users see their own; deleted bookings are left out).
#[utoipa::path(get, path = "/api/v1/bookings", tag = "bookings", security(("bearer" = ["ADMIN", "MARKETING"])),
    responses((status = 200, description = "The bookings, without deleted ones (`DELETE /bookings/{id}`); cancelled ones are listed", body = Page<BookingView>)))]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let user = state.services.require(&auth.0, Access::Staff).await?;
    let page = state
        .services
        .list_bookings(Viewer::of(&user), req.query_string())
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /bookings/{id}` (staff).
#[utoipa::path(get, path = "/api/v1/bookings/{id}", tag = "bookings", security(("bearer" = ["ADMIN", "MARKETING"])), params(("id" = Uuid, Path, description = "Booking id")),
    responses((status = 200, body = BookingView), (status = 404, description = "Not found, or deleted (`DELETE /bookings/{id}`) (`not_found`); a booking cancelled by PATCH or hold expiry stays readable", body = ProblemBody)))]
pub async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let user = state.services.require(&auth.0, Access::Staff).await?;
    let booking = state
        .services
        .get_booking(Viewer::of(&user), path.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(booking))
}

/// `PATCH /bookings/{id}` (ADMIN or verified MARKETING).
#[utoipa::path(patch, path = "/api/v1/bookings/{id}", tag = "bookings", security(("bearer" = ["ADMIN", "MARKETING with approved e-KYC"])), request_body = BookingPatch, params(("id" = Uuid, Path, description = "Booking id")),
    responses((status = 200, body = BookingView), (status = 404, description = "Not found, or deleted (`not_found`)", body = ProblemBody),
        (status = 409, description = "`invalid_transition`", body = ProblemBody), (status = 422, description = "Validation failed (`validation_failed`, with field errors)", body = ProblemBody)))]
pub async fn patch(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    path: web::Path<Uuid>,
    body: web::Json<BookingPatch>,
) -> ApiResult<HttpResponse> {
    let (id, patch) = (path.into_inner(), body.into_inner());
    let booking = state
        .write(move |services| async move {
            let user = services.require(&auth.0, Access::VerifiedStaff).await?;
            services
                .patch_booking(&ctx.actor(&user), Viewer::of(&user), id, patch)
                .await
        })
        .await?;
    Ok(HttpResponse::Ok().json(booking))
}

/// `DELETE /bookings/{id}`: cancels and soft-deletes (ADMIN or verified MARKETING).
#[utoipa::path(delete, path = "/api/v1/bookings/{id}", tag = "bookings", security(("bearer" = ["ADMIN", "MARKETING with approved e-KYC"])), params(("id" = Uuid, Path, description = "Booking id")),
    description = "Cancels the booking (the unit is AVAILABLE again) and deletes it softly: the row stays for the audit trail and the gap-free booking codes, but from then on `GET`/`PATCH`/`DELETE /bookings/{id}`, everything under `/bookings/{id}/`, and its invoices, payments and documents answer 404 `not_found`, and the lists and exports leave them out. A booking cancelled by `PATCH` (status `CANCELLED`) or by hold expiry is not deleted and stays readable.",
    responses((status = 200, description = "Cancelled and deleted; the body is the booking's last state", body = BookingView), (status = 404, description = "Not found, or already deleted (`not_found`)", body = ProblemBody),
        (status = 409, description = "`invalid_transition` (completed, or cancelled by PATCH or hold expiry)", body = ProblemBody)))]
pub async fn cancel(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let booking = state
        .write(move |services| async move {
            let user = services.require(&auth.0, Access::VerifiedStaff).await?;
            services
                .cancel_booking(&ctx.actor(&user), Viewer::of(&user), id)
                .await
        })
        .await?;
    Ok(HttpResponse::Ok().json(booking))
}

/// `GET /bookings/export.csv` (staff): the filtered list, streamed page by page.
#[utoipa::path(get, path = "/api/v1/bookings/export.csv", tag = "bookings", security(("bearer" = ["ADMIN", "MARKETING"])),
    responses((status = 200, description = "The filtered bookings as CSV, streamed", content_type = "text/csv", body = String)))]
pub async fn export_csv(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let user = state.services.require(&auth.0, Access::Staff).await?;
    // Parsed up front so a bad filter is a 400, not a broken stream.
    let query = ListQuery::parse(req.query_string(), &BOOKING_LIST)?;
    let source = BookingExport {
        services: state.services.clone(),
        viewer: Viewer::of(&user),
        query,
    };
    Ok(csv_response(source, "bookings.csv"))
}

/// The filtered bookings a staff member may see, as CSV rows.
struct BookingExport {
    services: Services,
    viewer: Viewer,
    query: ListQuery<kavling_core::entities::bookings::Column>,
}

impl CsvSource for BookingExport {
    const COLUMNS: &'static [&'static str] = &[
        "bookingCode",
        "bookingDate",
        "status",
        "paymentStatus",
        "paymentMethod",
        "paymentDate",
        "bookingFee",
        "expiresAt",
        "unitBlockNumber",
        "customerName",
        "customerPhone",
        "marketingName",
    ];
    const WHAT: &'static str = "bookings";

    async fn page(
        &self,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<(Uuid, Vec<String>)>, CoreError> {
        let rows = self
            .services
            .export_bookings_page(self.viewer, &self.query, after, limit)
            .await?;
        Ok(rows.iter().map(|r| (r.id, record(r).to_vec())).collect())
    }
}

fn record(r: &BookingExportRow) -> [String; 12] {
    [
        r.booking_code.clone(),
        ts(r.booking_date),
        r.status.clone(),
        r.payment_status.clone(),
        r.payment_method.clone().unwrap_or_default(),
        r.payment_date.map(ts).unwrap_or_default(),
        r.booking_fee.to_string(),
        ts(r.expires_at),
        cell(&r.unit_block_number),
        cell(&r.customer_name),
        // Phones are stored as +628…, which a spreadsheet would read as a formula too.
        cell(&r.customer_phone),
        cell(&r.marketing_name),
    ]
}
