//! The browser pages the binary serves itself: the public live siteplan at `/projects/{id}`,
//! the admin console at `/admin` and the chat at `/chat`. Plain HTML, CSS and ES modules from `crates/server/static/`,
//! embedded at build time (no Node build to run), under a strict Content-Security-Policy: scripts
//! and styles come only from `/static/...`, connections only to this origin.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// The CSP of the admin console and static files: same-origin scripts, styles, images and
/// connections (`'self'` covers the same-origin WebSocket), nothing inline, no framing. Images
/// may also be `blob:`: payment proofs need the admin's token, so they are fetched into blobs.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The CSP of the live page: as [`PAGE_CSP`], plus inline `style` *attributes* (never `<style>`
/// or scripts), because the inlined siteplan carries its design tool's presentation styles that
/// way (Inkscape writes every fill and stroke as `style="..."`). They cannot run code, and the
/// server-side sanitizer already removed every `url()` that is not a `#fragment`.
pub const LIVE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     style-src-attr 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    /// Name under `/static/`.
    name: &'static str,
    /// Content-Type sent with it.
    content_type: &'static str,
    /// The bytes.
    body: &'static [u8],
    /// FNV-1a of the bytes, computed at compile time, for the ETag.
    hash: u64,
}

/// FNV-1a 64: a build-time fingerprint for ETags (not a security hash).
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../../static/", $name)),
            hash: fnv1a(include_bytes!(concat!("../../static/", $name))),
        }
    };
}

/// A file written by `build.rs` (the status vocabulary from `kavling-status`).
macro_rules! generated {
    ($name:literal, $type:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!(env!("OUT_DIR"), "/", $name)),
            hash: fnv1a(include_bytes!(concat!(env!("OUT_DIR"), "/", $name))),
        }
    };
}

/// Files served under `/static/` (the HTML pages are served at their own paths).
static ASSETS: &[Asset] = &[
    generated!("statuses.js", "text/javascript; charset=utf-8"),
    generated!("statuses.css", "text/css; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("live.js", "text/javascript; charset=utf-8"),
    asset!("live-watch.js", "text/javascript; charset=utf-8"),
    asset!("admin.js", "text/javascript; charset=utf-8"),
    asset!("admin-payments.js", "text/javascript; charset=utf-8"),
    asset!("chat.js", "text/javascript; charset=utf-8"),
    asset!("kavling.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

static LIVE_PAGE: Asset = asset!("live.html", "text/html; charset=utf-8");
static ADMIN_PAGE: Asset = asset!("admin.html", "text/html; charset=utf-8");
static CHAT_PAGE: Asset = asset!("chat.html", "text/html; charset=utf-8");

/// Registers `/projects/{id}`, `/admin`, `/chat` and `/static/{name}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/projects/{id}").route(web::get().to(live)))
        .service(web::resource("/admin").route(web::get().to(admin)))
        .service(web::resource("/chat").route(web::get().to(chat)))
        .service(web::resource("/static/{name}").route(web::get().to(static_file)));
}

/// `GET /projects/{id}`: the live siteplan page (public; the page reads the id from its URL).
pub async fn live(req: HttpRequest, _id: web::Path<Uuid>) -> HttpResponse {
    serve(&req, &LIVE_PAGE, LIVE_CSP)
}

/// `GET /admin`: the admin console (its API calls carry the admin's token).
pub async fn admin(req: HttpRequest) -> HttpResponse {
    serve(&req, &ADMIN_PAGE, PAGE_CSP)
}

/// `GET /chat`: conversations of the signed-in buyer or marketing user (calls carry their token).
pub async fn chat(req: HttpRequest) -> HttpResponse {
    serve(&req, &CHAT_PAGE, PAGE_CSP)
}

/// `GET /static/{name}`: an embedded script, stylesheet or icon.
pub async fn static_file(req: HttpRequest, name: web::Path<String>) -> ApiResult<HttpResponse> {
    let name = name.into_inner();
    let asset = ASSETS
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no static file {name}")))?;
    Ok(serve(&req, asset, PAGE_CSP))
}

fn serve(req: &HttpRequest, asset: &Asset, csp: &'static str) -> HttpResponse {
    let etag = format!("\"{:016x}\"", asset.hash);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|inm| inm.split(',').any(|t| t.trim() == etag));
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    security_headers(&mut res, csp);
    // Revalidate every time: the ETag makes that a cheap 304, and an upgraded binary never
    // serves a page with modules of the previous version.
    res.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if fresh {
        res.finish()
    } else {
        res.content_type(asset.content_type).body(asset.body)
    }
}

fn security_headers(res: &mut HttpResponseBuilder, csp: &'static str) {
    res.insert_header((header::CONTENT_SECURITY_POLICY, csp))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .insert_header((
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .insert_header((
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
        ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_name_and_fingerprint() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(!a.body.is_empty(), "{} is empty", a.name);
            assert_eq!(a.hash, fnv1a(a.body));
            for b in &ASSETS[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.hash, b.hash);
            }
        }
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
