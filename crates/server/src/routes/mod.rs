//! Route table. Handlers are thin: extract, authorize, call a service, shape the response.

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod bookings;
pub mod conversations;
pub mod customers;
pub mod disputes;
pub mod documents;
pub mod health;
pub mod kyc;
pub mod leads;
pub mod pages;
pub mod payments;
pub mod projects;
pub mod siteplans;
pub mod units;
pub mod wallet;
pub mod watches;

use actix_multipart::form::MultipartFormConfig;
use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};

use crate::error::ApiError;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(pages::configure);
    cfg.service(web::resource("/healthz").route(web::get().to(health::healthz)))
        .service(web::resource("/readyz").route(web::get().to(health::readyz)))
        .service(web::resource("/ws").route(web::get().to(crate::ws::ws)))
        .service(web::resource("/api/v1/openapi.json").route(web::get().to(crate::openapi::serve)))
        .service(
            utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
                .config(utoipa_swagger_ui::Config::from("/api/v1/openapi.json")),
        )
        .service(web::redirect("/docs", "/docs/"))
        .service(web::resource("/metrics").route(web::get().to(crate::metrics::metrics)))
        .service(
            web::scope("/api/v1")
                .service(web::resource("/ws").route(web::get().to(crate::ws::ws)))
                .service(
                    web::resource("/auth/register")
                        .wrap(from_fn(crate::ratelimit::limit_auth))
                        .route(web::post().to(auth::register)),
                )
                .service(
                    web::resource("/auth/login")
                        .wrap(from_fn(crate::ratelimit::limit_auth))
                        .route(web::post().to(auth::login)),
                )
                .service(web::resource("/me").route(web::get().to(auth::me)))
                .service(
                    // Limited like login: each attempt verifies a password (argon2).
                    web::resource("/me/password")
                        .wrap(from_fn(crate::ratelimit::limit_auth))
                        .route(web::post().to(accounts::change_password)),
                )
                .service(
                    web::resource("/me/watches")
                        .route(web::get().to(watches::list))
                        .route(web::post().to(watches::create)),
                )
                .service(web::resource("/me/watches/{id}").route(web::delete().to(watches::delete)))
                .service(
                    web::resource("/me/notifications").route(web::get().to(watches::notifications)),
                )
                .service(
                    web::resource("/me/notifications/read")
                        .route(web::post().to(watches::mark_read)),
                )
                .service(web::resource("/admin/users").route(web::get().to(accounts::list)))
                .service(
                    web::resource("/admin/users/{id}/disable")
                        .route(web::post().to(accounts::disable)),
                )
                .service(
                    web::resource("/admin/users/{id}/enable")
                        .route(web::post().to(accounts::enable)),
                )
                .service(
                    web::resource("/me/kyc")
                        .app_data(
                            MultipartFormConfig::default()
                                .total_limit(kyc::KYC_FORM_LIMIT)
                                .memory_limit(kyc::KYC_FORM_LIMIT)
                                .error_handler(kyc::multipart_error),
                        )
                        .route(web::post().to(kyc::submit)),
                )
                .service(
                    web::resource("/admin/users/{id}/kyc/{document}")
                        .route(web::get().to(kyc::document)),
                )
                .service(
                    web::resource("/leads")
                        .route(web::get().to(leads::list))
                        .route(web::post().to(leads::create)),
                )
                .service(web::resource("/leads/{id}/unlock").route(web::post().to(leads::unlock)))
                .service(
                    web::resource("/leads/{id}/disputes").route(web::post().to(disputes::create)),
                )
                .service(web::resource("/disputes").route(web::get().to(disputes::list)))
                .service(web::resource("/conversations").route(web::get().to(conversations::list)))
                .service(
                    web::resource("/conversations/{id}/messages")
                        .route(web::get().to(conversations::messages))
                        .route(web::post().to(conversations::post_message)),
                )
                .service(web::resource("/disputes/{id}").route(web::patch().to(disputes::decide)))
                .service(web::resource("/wallet").route(web::get().to(wallet::get)))
                .service(
                    web::resource("/wallet/transactions")
                        .route(web::get().to(wallet::transactions)),
                )
                .service(
                    web::resource("/admin/wallets/{userId}/topup")
                        .route(web::post().to(wallet::topup)),
                )
                .service(
                    web::resource("/admin/users/{id}/kyc").route(web::post().to(admin::decide_kyc)),
                )
                .service(web::resource("/admin/audit-log").route(web::get().to(admin::audit_log)))
                .service(
                    web::resource("/projects")
                        .route(web::get().to(projects::list))
                        .route(web::post().to(projects::create)),
                )
                .service(web::resource("/projects/{id}").route(web::get().to(projects::get)))
                .service(
                    web::resource("/projects/{id}/siteplan")
                        .route(web::put().to(siteplans::upload)),
                )
                .service(
                    web::resource("/projects/{id}/siteplan.svg")
                        .route(web::get().to(siteplans::svg))
                        .route(web::head().to(siteplans::svg_head)),
                )
                .service(
                    web::resource("/projects/{id}/siteplan/mapping")
                        .route(web::get().to(siteplans::mapping))
                        .route(web::put().to(siteplans::set_mapping)),
                )
                .service(
                    web::resource("/projects/{id}/siteplan/geometry")
                        .route(web::get().to(siteplans::geometry)),
                )
                .service(
                    web::resource("/projects/{id}/units")
                        .route(web::get().to(units::list))
                        .route(web::post().to(units::create)),
                )
                .service(
                    web::resource("/projects/{id}/availability")
                        .route(web::get().to(units::availability)),
                )
                .service(
                    web::resource("/units/{id}")
                        .route(web::get().to(units::get))
                        .route(web::patch().to(units::patch)),
                )
                .service(
                    web::resource("/customers")
                        .route(web::get().to(customers::list))
                        .route(web::post().to(customers::create)),
                )
                .service(web::resource("/customers/{id}").route(web::get().to(customers::get)))
                .service(
                    web::resource("/bookings")
                        .route(web::get().to(bookings::list))
                        .route(web::post().to(bookings::create)),
                )
                // Before `/bookings/{id}`, which would otherwise claim `export.csv` as an id.
                .service(
                    web::resource("/bookings/export.csv")
                        .route(web::get().to(bookings::export_csv)),
                )
                .service(
                    web::resource("/bookings/{id}")
                        .route(web::get().to(bookings::get))
                        .route(web::patch().to(bookings::patch))
                        .route(web::delete().to(bookings::cancel)),
                )
                .service(
                    web::resource("/bookings/{id}/documents")
                        .app_data(documents::upload_config())
                        .route(web::get().to(documents::list))
                        .route(web::post().to(documents::upload)),
                )
                .service(
                    web::resource("/booking-documents/{id}/file")
                        .route(web::get().to(documents::file)),
                )
                .service(
                    web::resource("/booking-documents/{id}")
                        .route(web::patch().to(documents::verify)),
                )
                .service(
                    web::resource("/bookings/{id}/schedule")
                        .route(web::post().to(payments::schedule)),
                )
                .service(
                    web::resource("/bookings/{id}/invoices")
                        .route(web::get().to(payments::booking_invoices)),
                )
                .service(web::resource("/invoices").route(web::get().to(payments::list)))
                // Before `/invoices/{id}`, which would otherwise claim `export.csv` as an id.
                .service(
                    web::resource("/invoices/export.csv")
                        .route(web::get().to(payments::export_csv)),
                )
                .service(web::resource("/invoices/{id}").route(web::get().to(payments::get)))
                .service(
                    web::resource("/invoices/{id}/payments")
                        .app_data(payments::upload_config())
                        .route(web::post().to(payments::submit)),
                )
                .service(web::resource("/payments").route(web::get().to(payments::list_payments)))
                .service(
                    web::resource("/payments/{id}")
                        .route(web::get().to(payments::get_payment))
                        .route(web::patch().to(payments::decide)),
                )
                .service(
                    web::resource("/payments/{id}/proof").route(web::get().to(payments::proof)),
                ),
        )
        .default_service(web::to(not_found));
}

async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}
