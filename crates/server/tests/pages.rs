//! The pages the binary serves itself: the live siteplan `/projects/{id}`, the admin console
//! `/admin` and their embedded `/static/` files: content types, security headers, revalidation,
//! and scripts that reach only this origin and never parse HTML from strings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use actix_web::http::StatusCode;
use common::TestApp;

const STATIC_FILES: &[(&str, &str)] = &[
    ("/static/statuses.js", "text/javascript; charset=utf-8"),
    ("/static/statuses.css", "text/css; charset=utf-8"),
    ("/static/api.js", "text/javascript; charset=utf-8"),
    ("/static/live.js", "text/javascript; charset=utf-8"),
    ("/static/admin.js", "text/javascript; charset=utf-8"),
    ("/static/chat.js", "text/javascript; charset=utf-8"),
    ("/static/kavling.css", "text/css; charset=utf-8"),
    ("/static/favicon.svg", "image/svg+xml"),
];

/// The directives every page's CSP must carry.
fn assert_strict_csp(csp: &str, page: &str) {
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(
            csp.split(';').any(|d| d.trim() == directive),
            "{page}: CSP lacks {directive}: {csp}"
        );
    }
    assert!(!csp.contains("unsafe-eval"), "{page}: {csp}");
    assert!(!csp.contains('*'), "{page}: wildcard in {csp}");
}

fn assert_security_headers(res: &common::TestResponse, what: &str) {
    assert_eq!(
        res.header("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        res.header("x-frame-options").as_deref(),
        Some("DENY"),
        "{what}"
    );
    assert_eq!(
        res.header("referrer-policy").as_deref(),
        Some("no-referrer"),
        "{what}"
    );
    assert!(res.header("etag").is_some(), "{what}");
    assert_eq!(
        res.header("cache-control").as_deref(),
        Some("no-cache"),
        "{what}"
    );
    assert_strict_csp(&res.header("content-security-policy").unwrap(), what);
}

#[actix_web::test]
async fn pages_are_html_with_a_strict_csp() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, _) = app.project_with_units(&admin, 2).await;

    let res = app.get(&format!("/projects/{project}"), None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_security_headers(&res, "live page");
    // The live page lets the inlined siteplan's style attributes apply, and nothing else inline.
    let csp = res.header("content-security-policy").unwrap();
    assert!(
        csp.split(';')
            .any(|d| d.trim() == "style-src-attr 'unsafe-inline'")
    );
    assert!(
        !csp.replace("style-src-attr 'unsafe-inline'", "")
            .contains("unsafe-inline"),
        "{csp}"
    );
    let html = String::from_utf8(res.bytes.clone()).unwrap();
    assert!(html.contains(r#"<script type="module" src="/static/live.js"></script>"#));

    let res = app.get("/admin", None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_security_headers(&res, "admin page");
    assert!(
        !res.header("content-security-policy")
            .unwrap()
            .contains("unsafe-inline")
    );
    let html = String::from_utf8(res.bytes.clone()).unwrap();
    assert!(html.contains(r#"<script type="module" src="/static/admin.js"></script>"#));
    // No inline script or style in either page (the CSP would block them anyway).
    assert!(!html.contains("<script>") && !html.contains("<style") && !html.contains(" style="));

    // The chat page: the same strict CSP (message text is never markup).
    let res = app.get("/chat", None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_security_headers(&res, "chat page");
    let html = String::from_utf8(res.bytes.clone()).unwrap();
    assert!(html.contains(r#"<script type="module" src="/static/chat.js"></script>"#));
    assert!(!html.contains("<script>") && !html.contains("<style") && !html.contains(" style="));

    // Unknown or malformed ids are the API's problem+json 404, and the API itself is untouched.
    app.get("/projects/not-a-uuid", None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let res = app.get(&format!("/api/v1/projects/{project}"), None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json["id"], project.to_string());
}

#[actix_web::test]
async fn static_files_have_their_types_and_revalidate_with_etags() {
    let app = TestApp::spawn().await;
    let mut etags = Vec::new();
    for (path, content_type) in STATIC_FILES {
        let res = app.get(path, None).await;
        assert_eq!(res.status, StatusCode::OK, "{path}");
        assert_eq!(
            res.header("content-type").as_deref(),
            Some(*content_type),
            "{path}"
        );
        assert_security_headers(&res, path);
        assert!(!res.bytes.is_empty(), "{path}");
        let etag = res.header("etag").unwrap();
        assert!(!etags.contains(&etag), "{path}: ETag {etag} repeats");
        etags.push(etag.clone());

        let mut fresh = app
            .client
            .get(app.url(path))
            .insert_header(("if-none-match", etag.as_str()))
            .send()
            .await
            .unwrap();
        assert_eq!(fresh.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert!(fresh.body().await.unwrap().is_empty(), "{path}");
        let stale = app
            .client
            .get(app.url(path))
            .insert_header(("if-none-match", "\"0000000000000000\""))
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), StatusCode::OK, "{path}");
    }
    app.get("/static/nope.js", None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.get("/static/..%2Fsrc%2Fmain.rs", None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

/// Every string literal of a script (single, double or back quotes; template text kept whole).
fn string_literals(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                // A line comment (no URL in this code base sits after `//` inside a string at
                // the start of a line, which the quote branch below would handle anyway).
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
            }
            '\'' | '"' | '`' => {
                let mut lit = String::new();
                while let Some(n) = chars.next() {
                    if n == '\\' {
                        if let Some(e) = chars.next() {
                            lit.push(e);
                        }
                    } else if n == c {
                        break;
                    } else {
                        lit.push(n);
                    }
                }
                out.push(lit);
            }
            _ => {}
        }
    }
    out
}

#[actix_web::test]
async fn embedded_scripts_reach_only_this_origin() {
    let app = TestApp::spawn().await;
    for name in ["api.js", "live.js", "admin.js", "chat.js"] {
        let res = app.get(&format!("/static/{name}"), None).await;
        assert_eq!(res.status, StatusCode::OK);
        let src = String::from_utf8(res.bytes).unwrap();
        let literals = string_literals(&src);
        assert!(literals.len() > 20, "{name}: the scanner found no strings");

        // No absolute or protocol-relative URL: the only `scheme://` is the SVG namespace name.
        for lit in &literals {
            let absolute = lit.contains("://") || lit.starts_with("//");
            assert!(
                !absolute || lit == "http://www.w3.org/2000/svg",
                "{name}: a non-same-origin URL {lit:?}"
            );
        }
        // Requests go to this origin's API or WebSocket only.
        for (i, _) in src.match_indices("fetch(") {
            let arg = src[i + "fetch(".len()..].trim_start();
            assert!(
                arg.starts_with("`/api/v1") || arg.starts_with("'/api/v1"),
                "{name}: fetch of {}",
                &arg[..arg.len().min(40)]
            );
        }
        for (i, _) in src.match_indices("new URL(") {
            let arg = &src[i + "new URL(".len()..];
            assert!(
                arg.starts_with("'/ws', location.href)"),
                "{name}: {}",
                &arg[..arg.len().min(40)]
            );
        }
        // Imports are relative modules this server serves.
        for (i, _) in src.match_indices(" from '") {
            let rest = &src[i + " from '".len()..];
            let module = &rest[..rest.find('\'').unwrap()];
            assert!(module.starts_with("./"), "{name}: import of {module}");
            let served = app
                .get(&format!("/static/{}", &module[2..]), None)
                .await
                .status;
            assert_eq!(served, StatusCode::OK, "{name}: import of {module}");
        }
        // Untrusted text never becomes markup or code.
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "setTimeout('",
            "setTimeout(\"",
        ] {
            assert!(!src.contains(banned), "{name} uses {banned}");
        }
    }
    // The page's own references are same-origin paths that are served.
    for page in [
        "/admin".to_owned(),
        "/chat".to_owned(),
        format!("/projects/{}", uuid::Uuid::now_v7()),
    ] {
        let html = String::from_utf8(app.get(&page, None).await.bytes).unwrap();
        for attr in ["src=\"", "href=\""] {
            for (i, _) in html.match_indices(attr) {
                let rest = &html[i + attr.len()..];
                let url = &rest[..rest.find('"').unwrap()];
                assert!(
                    url.starts_with('/') && !url.starts_with("//"),
                    "{page}: {url}"
                );
                if url.starts_with("/static/") {
                    assert_eq!(app.get(url, None).await.status, StatusCode::OK, "{url}");
                }
            }
        }
    }
}

#[test]
fn the_literal_scanner_sees_strings() {
    let lits = string_literals(
        r#"const a = 'x\'y'; // 'not'
fetch(`/api/v1${p}`); const b = "http://e.com";"#,
    );
    assert_eq!(lits, ["x'y", "/api/v1${p}", "http://e.com"]);
}

/// The pages paint with the colours the API sends: both come from the one status table, and no
/// page or stylesheet carries a copy of it.
#[actix_web::test]
async fn pages_read_the_status_table_the_api_colours_with() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, _) = app.project_with_units(&admin, 1).await;
    let availability = app
        .get(&format!("/api/v1/projects/{project}/availability"), None)
        .await;
    assert_eq!(availability.status, StatusCode::OK);
    let unit = &availability.json["units"][0];
    let (status, color) = (
        unit["status"].as_str().unwrap(),
        unit["color"].as_str().unwrap(),
    );

    let js = String::from_utf8(app.get("/static/statuses.js", None).await.bytes).unwrap();
    assert!(
        js.contains(&format!("key: '{status}'")) && js.contains(&format!("color: '{color}'")),
        "{js}"
    );
    let css = String::from_utf8(app.get("/static/statuses.css", None).await.bytes).unwrap();
    assert!(css.contains(color), "{css}");

    for page in [
        "api.js",
        "live.js",
        "admin.js",
        "admin-payments.js",
        "kavling.css",
    ] {
        let text =
            String::from_utf8(app.get(&format!("/static/{page}"), None).await.bytes).unwrap();
        for style in &kavling_status::UNIT_STATUSES {
            assert!(
                !text.contains(style.color),
                "/static/{page} carries a copy of {}",
                style.color
            );
        }
    }
}
