//! The OpenAPI 3.1 description, generated from the handlers' `#[utoipa::path]` attributes and the
//! DTOs' `ToSchema` derives, served at `/api/v1/openapi.json` and browsable (offline) at `/docs`.

use kavling_core::list::ListSpec;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{AdditionalProperties, Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required};
use utoipa::{Modify, OpenApi};

use crate::routes;

/// List endpoints and the fields their whitelist accepts (for the `sort` pattern and the docs).
fn list_endpoints() -> Vec<(&'static str, Vec<&'static str>)> {
    fn names<C>(spec: &ListSpec<C>) -> Vec<&'static str> {
        spec.fields.iter().map(|f| f.name).collect()
    }
    vec![
        (
            "/api/v1/projects",
            names(&kavling_core::services::projects::PROJECT_LIST),
        ),
        (
            "/api/v1/projects/{id}/units",
            names(&kavling_core::services::units::UNIT_LIST),
        ),
        (
            "/api/v1/admin/audit-log",
            names(&kavling_core::audit::AUDIT_LIST),
        ),
        (
            "/api/v1/admin/users",
            names(&kavling_core::services::accounts::USER_LIST),
        ),
        (
            "/api/v1/invoices",
            names(&kavling_core::services::payments::INVOICE_LIST),
        ),
        (
            "/api/v1/bookings/{id}/invoices",
            names(&kavling_core::services::payments::INVOICE_LIST),
        ),
        (
            "/api/v1/payments",
            names(&kavling_core::services::payments::PAYMENT_LIST),
        ),
        (
            "/api/v1/disputes",
            names(&kavling_core::services::disputes::DISPUTE_LIST),
        ),
        (
            "/api/v1/conversations",
            names(&kavling_core::services::conversations::CONVERSATION_LIST),
        ),
        (
            "/api/v1/conversations/{id}/messages",
            names(&kavling_core::services::conversations::MESSAGE_LIST),
        ),
        (
            "/api/v1/me/watches",
            names(&kavling_core::services::watches::WATCH_LIST),
        ),
        (
            "/api/v1/me/notifications",
            names(&kavling_core::services::notifications::NOTIFICATION_LIST),
        ),
    ]
}

fn query_param(name: &str, description: String, schema: Object) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// The list conventions' parameters for one resource. Filters (`filters[field][$op]=value`) are
/// described in words: their nested brackets have no faithful OpenAPI parameter form.
fn list_params(fields: &[&str]) -> Vec<Parameter> {
    let alt = fields.join("|");
    let sort_pattern = format!("^({alt})(:(asc|desc))?(,({alt})(:(asc|desc))?)*$");
    vec![
        query_param(
            "sort",
            format!(
                "Sort, e.g. `{}:desc`; fields: {}.",
                fields.first().copied().unwrap_or("id"),
                fields.join(", ")
            ),
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(sort_pattern))
                .build(),
        ),
        query_param(
            "pagination[page]",
            "Page number, from 1.".into(),
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(1_000_000))
                .build(),
        ),
        query_param(
            "pagination[pageSize]",
            "Rows per page (default 25, at most 100).".into(),
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(100))
                .build(),
        ),
    ]
}

/// The `Idempotency-Key` header where it is optional (unlock).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct OptionalIdempotencyKey {
    /// Replays the first response for the same key; another request with the same key is 409
    /// `idempotency_key_reused`. 1 to 200 visible characters.
    #[param(
        rename = "Idempotency-Key",
        pattern = r"^[\x21-\x7e]([\x20-\x7e]{0,198}[\x21-\x7e])?$"
    )]
    key: Option<String>,
}

/// The `Idempotency-Key` header where it is required (top-up).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct RequiredIdempotencyKey {
    /// A retried top-up never credits twice: the same key replays the first response, another
    /// request with the same key is 409 `idempotency_key_reused`. 1 to 200 visible characters.
    #[param(
        rename = "Idempotency-Key",
        pattern = r"^[\x21-\x7e]([\x20-\x7e]{0,198}[\x21-\x7e])?$"
    )]
    key: String,
}

/// The media type of every error body.
const PROBLEM_JSON: &str = "application/problem+json";

fn problem_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ProblemBody")))
                    .build(),
            )
            .build(),
    )
}

/// Adds what every operation shares: the bearer scheme, problem+json as the error media type, the
/// generic body and parameter problems (400, 413, 415), and the list parameters.
struct Conventions;

/// The role names an operation's `bearer` requirement lists (empty: any signed-in user).
fn required_roles(
    security: Option<&[utoipa::openapi::security::SecurityRequirement]>,
) -> Vec<String> {
    security
        .unwrap_or_default()
        .iter()
        .filter_map(|req| serde_json::to_value(req).ok())
        .filter_map(|v| v.get("bearer").cloned())
        .filter_map(|v| serde_json::from_value::<Vec<String>>(v).ok())
        .flatten()
        .collect()
}

/// The 403 of an operation open to `roles` only.
fn forbidden_description(roles: &[String]) -> String {
    let mut text = format!("Not {} (`forbidden`)", roles.join(" or "));
    if roles.iter().any(|r| r.contains("e-KYC")) {
        text.push_str(", or a MARKETING user whose e-KYC is not approved (`kyc_required`)");
    }
    text
}

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        unique_operation_ids(openapi);
        let lists = list_endpoints();
        for (path, item) in openapi.paths.paths.iter_mut() {
            let has_path_params = path.contains('{');
            for (method, op) in [
                ("get", item.get.as_mut()),
                ("post", item.post.as_mut()),
                ("put", item.put.as_mut()),
                ("patch", item.patch.as_mut()),
                ("delete", item.delete.as_mut()),
            ] {
                let Some(op) = op else { continue };
                if method == "get"
                    && let Some((_, fields)) = lists.iter().find(|(p, _)| p == path)
                {
                    op.parameters
                        .get_or_insert_with(Vec::new)
                        .extend(list_params(fields).into_iter().map(RefOr::T));
                    let desc = op.description.get_or_insert_with(String::new);
                    desc.push_str(&format!(
                        "\n\nFilters: `filters[field][$op]=value` with `$eq $ne $in $containsi $gt $gte $lt $lte` on {}; \
                         `$in` takes indexed values (`filters[status][$in][0]=BOOKED`); \
                         `$null` takes true or false (`filters[readAt][$null]=true`). Unknown fields or operators: 400 `invalid_query`.",
                        fields.join(", ")
                    ));
                }
                let query_params = op.parameters.as_ref().is_some_and(|p| {
                    p.iter()
                        .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Query))
                });
                let responses = &mut op.responses.responses;
                // OpenAPI requires a description on every response; generators refuse the
                // document without one, so a bare `(status = 200, body = X)` gets its reason phrase.
                for (status, response) in responses.iter_mut() {
                    if let RefOr::T(r) = response
                        && r.description.is_empty()
                    {
                        r.description = status
                            .parse::<u16>()
                            .ok()
                            .and_then(|s| actix_web::http::StatusCode::from_u16(s).ok())
                            .and_then(|s| s.canonical_reason())
                            .unwrap_or("Success")
                            .to_owned();
                    }
                }
                // Error bodies are problem+json, not plain JSON.
                for response in responses.values_mut() {
                    if let RefOr::T(r) = response
                        && let Some(content) = r.content.shift_remove("application/json")
                    {
                        let is_problem = matches!(&content, RefOr::T(c)
                            if matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/ProblemBody")));
                        let key = if is_problem {
                            PROBLEM_JSON
                        } else {
                            "application/json"
                        };
                        r.content.insert(key.to_owned(), content);
                    }
                }
                let mut add = |code: &str, description: &str| {
                    responses
                        .entry(code.to_owned())
                        .or_insert_with(|| problem_response(description));
                };
                if op.request_body.is_some() {
                    add(
                        "400",
                        "The body is not valid for its media type (`bad_request`)",
                    );
                    add("413", "The body is too large");
                    add(
                        "422",
                        "The body has the wrong shape or invalid values (`validation_failed`)",
                    );
                    add("415", "Wrong Content-Type (`unsupported_media_type`)");
                }
                if has_path_params {
                    add("404", "Not found, or a malformed id (`not_found`)");
                }
                if query_params {
                    add(
                        "400",
                        "A query parameter is not understood (`invalid_query`)",
                    );
                }
                if op.security.is_some() {
                    add(
                        "401",
                        "Missing, malformed, forged, expired or revoked token (`unauthorized`)",
                    );
                }
                // The roles an operation admits are its bearer requirement's scopes (OpenAPI 3.1
                // lets a non-OAuth scheme list role names there); its 403 follows from them
                // unless the operation states a more specific one.
                let roles = required_roles(op.security.as_deref());
                if !roles.is_empty() {
                    add("403", &forbidden_description(&roles));
                }
                add("503", "The database is busy; retry (`busy`)");
            }
        }
    }
}

/// Makes every `operationId` unique, as OpenAPI requires (generated clients name their functions
/// after it, and a repeated one overwrites another). utoipa takes the handler's name, and several
/// modules have a `create` or a `list`; a repeated name becomes the name plus the path's fixed
/// segments (`create` on `/projects/{id}/units` is `createProjectsUnits`). Unique names stay.
fn unique_operation_ids(openapi: &mut utoipa::openapi::OpenApi) {
    use std::collections::HashMap;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for item in openapi.paths.paths.values() {
        for op in [&item.get, &item.post, &item.put, &item.patch, &item.delete]
            .into_iter()
            .flatten()
        {
            if let Some(id) = &op.operation_id {
                *seen.entry(id.clone()).or_default() += 1;
            }
        }
    }
    for (path, item) in openapi.paths.paths.iter_mut() {
        let suffix: String = path
            .split('/')
            .filter(|s| !s.is_empty() && !s.starts_with('{') && *s != "api" && *s != "v1")
            .flat_map(|s| s.split(['-', '.', '_']))
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect();
        for op in [
            item.get.as_mut(),
            item.post.as_mut(),
            item.put.as_mut(),
            item.patch.as_mut(),
            item.delete.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(id) = op.operation_id.as_mut()
                && seen.get(id.as_str()).is_some_and(|n| *n > 1)
            {
                id.push_str(&suffix);
            }
        }
    }
}

/// OpenAPI links from each create operation to the operations that take the id it returns, so
/// clients (and schemathesis's stateful phase) can follow them.
struct Links;

/// Where a link's id comes from: the created resource's own id, or the path id of the request.
const NEW_ID: &str = "$response.body#/id";
const PATH_ID: &str = "$request.path.id";

/// What a link fills in the target operation.
enum Fill {
    /// The path parameter `id` with this expression.
    Id(&'static str),
    /// Another parameter, with this expression.
    Param(&'static str, &'static str),
    /// Merges `{field: <the new id>}` into the target's generated body.
    Body(&'static str),
}

use Fill::{Body, Id, Param};

/// The links of one response: (path, method, status) and its (target operation id, fill)s.
type LinkRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, Fill)],
);

/// Every link: from (path, method, status) to (target operation id, what it fills). A new
/// create operation adds its row here (see docs/ARCHITECTURE.md, "The OpenAPI document").
#[rustfmt::skip]
const LINKS: &[LinkRow] = &[
    // A project: read it, its units, availability and siteplan; upload a drawing, add units.
    ("/api/v1/projects", "post", "201", &[
        ("create_watch", Body("projectId")),
        ("getProjects", Id(NEW_ID)), ("listProjectsUnits", Id(NEW_ID)),
        ("createProjectsUnits", Id(NEW_ID)), ("availability", Id(NEW_ID)),
        ("uploadProjectsSiteplan", Id(NEW_ID)), ("geometry", Id(NEW_ID)), ("mapping", Id(NEW_ID)),
    ]),
    // A drawing: its SVG, geometry and mapping.
    ("/api/v1/projects/{id}/siteplan", "put", "200", &[
        ("svg", Id(PATH_ID)), ("geometry", Id(PATH_ID)), ("mapping", Id(PATH_ID)),
        ("set_mapping", Id(PATH_ID)),
    ]),
    // A unit: read and change it, book it, ask about it.
    ("/api/v1/projects/{id}/units", "post", "201", &[
        ("getUnits", Id(NEW_ID)), ("patchUnits", Id(NEW_ID)),
        ("createBookings", Body("unitId")), ("createLeads", Body("unitId")),
        ("create_watch", Body("unitId")),
    ]),
    // A watch: delete it.
    ("/api/v1/me/watches", "post", "201", &[("delete_watch", Id(NEW_ID))]),
    // A customer: read it.
    ("/api/v1/customers", "post", "201", &[("getCustomers", Id(NEW_ID))]),
    // A booking: read, change, cancel; its documents and payment schedule.
    ("/api/v1/bookings", "post", "201", &[
        ("getBookings", Id(NEW_ID)), ("patchBookings", Id(NEW_ID)), ("cancel", Id(NEW_ID)),
        ("listBookingsDocuments", Id(NEW_ID)), ("uploadBookingsDocuments", Id(NEW_ID)),
        ("schedule_invoices", Id(NEW_ID)), ("list_booking_invoices", Id(NEW_ID)),
    ]),
    // A booking document: download and verify it.
    ("/api/v1/bookings/{id}/documents", "post", "201", &[
        ("file", Id(NEW_ID)), ("verify", Id(NEW_ID)),
    ]),
    // A schedule: its first invoice, a payment against it, the booking's invoices.
    ("/api/v1/bookings/{id}/schedule", "post", "201", &[
        ("get_invoice", Id("$response.body#/0/id")),
        ("submit_payment", Id("$response.body#/0/id")),
        ("list_booking_invoices", Id(PATH_ID)),
    ]),
    // A payment: read it, its proof, decide it.
    ("/api/v1/invoices/{id}/payments", "post", "201", &[
        ("get_payment", Id(NEW_ID)), ("payment_proof", Id(NEW_ID)), ("decide_payment", Id(NEW_ID)),
    ]),
    // A lead: unlock it, dispute it; a dispute: decide it.
    ("/api/v1/leads", "post", "201", &[("unlock", Id(NEW_ID)), ("file_dispute", Id(NEW_ID))]),
    ("/api/v1/leads/{id}/disputes", "post", "201", &[("decide_dispute", Id(NEW_ID))]),
    // An unlock opens the lead's conversation: read and send its messages.
    ("/api/v1/leads/{id}/unlock", "post", "200", &[
        ("list_messages", Id("$response.body#/conversationId")),
        ("post_message", Id("$response.body#/conversationId")),
    ]),
    // A message: its conversation's messages.
    ("/api/v1/conversations/{id}/messages", "post", "201", &[("list_messages", Id(PATH_ID))]),
    // A user: the admin's operations on them.
    ("/api/v1/auth/register", "post", "201", &[
        ("disable", Id("$response.body#/user/id")), ("enable", Id("$response.body#/user/id")),
        ("decide_kyc", Id("$response.body#/user/id")),
        ("topup", Param("userId", "$response.body#/user/id")),
    ]),
];

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, method, status, links) in LINKS {
            let Some(item) = openapi.paths.paths.get_mut(*path) else {
                continue;
            };
            let op = match *method {
                "post" => item.post.as_mut(),
                "put" => item.put.as_mut(),
                _ => item.get.as_mut(),
            };
            let Some(RefOr::T(response)) =
                op.and_then(|op| op.responses.responses.get_mut(*status))
            else {
                continue;
            };
            for (target, fill) in *links {
                let link = utoipa::openapi::link::LinkBuilder::new().operation_id(*target);
                let link = match fill {
                    Id(expr) => link.parameter("id", *expr),
                    Param(name, expr) => link.parameter(*name, *expr),
                    Body(field) => link.request_body(Some(serde_json::json!({ *field: NEW_ID }))),
                };
                let mut name: Vec<char> = target.chars().collect();
                if let Some(first) = name.first_mut() {
                    first.make_ascii_uppercase();
                }
                response
                    .links
                    .insert(name.into_iter().collect(), RefOr::T(link.build()));
            }
        }
    }
}

/// Rules of the server that the derives cannot state, written into the component schemas with
/// the JSON Schema keywords that state them exactly (OpenAPI 3.1 is JSON Schema 2020-12), so
/// generated clients and schemathesis know them:
/// - `NewBooking`: exactly one of `customerId` and `customer` (`if`/`then`/`else`).
/// - `PaymentDecision`: a `reason` with a visible character when `verified` is false (`if`/`then`).
/// - `NewWatch`: `unitId` alone, or `projectId` with an optional `filter` (`if`/`then`/`else`).
/// - `ScheduleInput.items`: at most one `BOOKING_FEE` item (`contains` + `maxContains`).
/// - multipart forms: no fields beyond the documented ones (`additionalProperties: false`).
struct Rules;

/// A visible (non-blank) character, as the server's `trim()` judges it; `\x85` is listed
/// because Python's `\s` counts it and ECMA's does not.
const VISIBLE: &str = r"[^\s\x85]";

/// Adds JSON Schema keywords that utoipa has no field for to an object or array schema.
fn add_keywords(schema: &mut Schema, keywords: serde_json::Value) {
    let serde_json::Value::Object(map) = keywords else {
        return;
    };
    let extensions = match schema {
        Schema::Object(o) => &mut o.extensions,
        Schema::Array(a) => &mut a.extensions,
        _ => return,
    };
    extensions.get_or_insert_with(Default::default).extend(map);
}

fn component<'a>(openapi: &'a mut utoipa::openapi::OpenApi, name: &str) -> Option<&'a mut Schema> {
    match openapi.components.as_mut()?.schemas.get_mut(name)? {
        RefOr::T(s) => Some(s),
        RefOr::Ref(_) => None,
    }
}

impl Modify for Rules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(s) = component(openapi, "NewBooking") {
            // if/then/else rather than oneOf: generators that ignore the rule still see one
            // plain object (oneOf makes some emit a union of unnamed models).
            add_keywords(
                s,
                serde_json::json!({
                    "if": {"properties": {"customerId": {"type": "string"}}, "required": ["customerId"]},
                    "then": {"properties": {"customer": {"type": "null"}}},
                    "else": {"properties": {"customer": {"type": "object"}}, "required": ["customer"]},
                }),
            );
        }
        if let Some(s) = component(openapi, "PaymentDecision") {
            add_keywords(
                s,
                serde_json::json!({
                    "if": {"properties": {"verified": {"const": false}}, "required": ["verified"]},
                    "then": {"required": ["reason"],
                             "properties": {"reason": {"type": "string", "pattern": VISIBLE}}},
                }),
            );
        }
        if let Some(s) = component(openapi, "NewWatch") {
            add_keywords(
                s,
                serde_json::json!({
                    "if": {"properties": {"unitId": {"type": "string"}}, "required": ["unitId"]},
                    "then": {"properties": {"projectId": {"type": "null"}, "filter": {"type": "null"}}},
                    "else": {"properties": {"projectId": {"type": "string"}}, "required": ["projectId"]},
                }),
            );
        }
        if let Some(Schema::Object(o)) = component(openapi, "ScheduleInput")
            && let Some(RefOr::T(items)) = o.properties.get_mut("items")
        {
            add_keywords(
                items,
                serde_json::json!({
                    "contains": {"properties": {"kind": {"const": "BOOKING_FEE"}}, "required": ["kind"]},
                    "minContains": 0,
                    "maxContains": 1,
                }),
            );
        }
        for form in ["KycUploadDoc", "DocumentUploadDoc", "PaymentUploadDoc"] {
            if let Some(Schema::Object(o)) = component(openapi, form) {
                o.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
}

/// The API document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kavling API",
        description = "Real-time siteplan and unit availability for Indonesian housing developers. Errors are \
            application/problem+json with a stable `code`. The WebSocket protocol (`GET /ws`) is described in CONTRACT.md \
            and docs/flutter.md.",
    ),
    modifiers(&Conventions, &Links, &Rules),
    components(schemas(kavling_core::services::kyc::KycDocument)),
    paths(
        routes::health::healthz,
        routes::health::readyz,
        crate::metrics::metrics,
        routes::auth::register,
        routes::auth::login,
        routes::auth::me,
        routes::admin::decide_kyc,
        routes::admin::audit_log,
        routes::accounts::list,
        routes::accounts::change_password,
        routes::accounts::disable,
        routes::accounts::enable,
        routes::projects::create,
        routes::projects::list,
        routes::projects::get,
        routes::units::create,
        routes::units::list,
        routes::units::get,
        routes::units::patch,
        routes::units::availability,
        routes::siteplans::upload,
        routes::siteplans::svg,
        routes::siteplans::svg_head,
        routes::siteplans::geometry,
        routes::siteplans::mapping,
        routes::siteplans::set_mapping,
        routes::kyc::submit,
        routes::kyc::document,
        routes::leads::create,
        routes::leads::list,
        routes::leads::unlock,
        routes::wallet::get,
        routes::wallet::transactions,
        routes::wallet::topup,
        routes::customers::create,
        routes::customers::list,
        routes::customers::get,
        routes::bookings::create,
        routes::bookings::list,
        routes::bookings::export_csv,
        routes::bookings::get,
        routes::bookings::patch,
        routes::bookings::cancel,
        routes::documents::upload,
        routes::documents::list,
        routes::documents::file,
        routes::documents::verify,
        routes::payments::schedule,
        routes::payments::booking_invoices,
        routes::payments::list,
        routes::payments::export_csv,
        routes::payments::get,
        routes::payments::submit,
        routes::payments::list_payments,
        routes::payments::get_payment,
        routes::payments::decide,
        routes::payments::proof,
        routes::disputes::create,
        routes::disputes::list,
        routes::disputes::decide,
        routes::conversations::list,
        routes::conversations::messages,
        routes::conversations::post_message,
        routes::watches::create,
        routes::watches::list,
        routes::watches::delete,
        routes::watches::notifications,
        routes::watches::mark_read,
    ),
    tags(
        (name = "auth", description = "Registration, login, the caller"),
        (name = "admin", description = "Users (the KYC queue, disabling), KYC decisions and the audit trail"),
        (name = "projects", description = "Housing projects"),
        (name = "units", description = "Units and availability"),
        (name = "siteplans", description = "Siteplan upload and serving"),
        (name = "bookings", description = "Customers, bookings and booking documents"),
        (name = "leads", description = "Buyers' leads and pay-per-lead unlocking"),
        (name = "wallet", description = "Wallet balance, ledger and top-ups"),
        (name = "payments", description = "Invoices, payments with proofs, and their verification"),
        (name = "conversations", description = "Chat between a buyer and the marketing user who unlocked their lead"),
        (name = "notifications", description = "Watches on units and projects, and the notification inbox (live on `user:<id>`)"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

/// The document as JSON, built and serialized once per process: built per worker, each copy
/// of the document held ~3 MB for the process's life, and each request serialized it again.
pub fn document_json() -> actix_web::web::Bytes {
    static JSON: std::sync::LazyLock<actix_web::web::Bytes> = std::sync::LazyLock::new(|| {
        // A document of plain maps and strings always serializes.
        ApiDoc::openapi()
            .to_json()
            .unwrap_or_else(|_| "{}".into())
            .into()
    });
    JSON.clone()
}

/// `GET /api/v1/openapi.json`: the document [`document_json`] holds.
pub async fn serve() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(document_json())
}
