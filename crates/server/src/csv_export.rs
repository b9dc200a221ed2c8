//! CSV exports streamed page by page (keyset on time-ordered ids), shared by every
//! `export.csv` route: a route says how to read one page and how to write a row, this module
//! writes the header, streams the pages and ends a failed transfer early.

use std::future::Future;

use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use kavling_core::CoreError;
use uuid::Uuid;

/// Rows per page read from the database.
pub const EXPORT_PAGE: u64 = 500;

/// One exportable list: its columns and its pages.
pub trait CsvSource: 'static {
    /// The header row.
    const COLUMNS: &'static [&'static str];
    /// What the log calls it when a transfer fails (`booking`, `invoice`).
    const WHAT: &'static str;

    /// Up to `limit` rows after the row `after` (None: from the start), each as its keyset id
    /// and its CSV cells.
    fn page(
        &self,
        after: Option<Uuid>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<(Uuid, Vec<String>)>, CoreError>>;
}

/// The export's position.
struct Cursor<S> {
    source: S,
    after: Option<Uuid>,
    header: bool,
    done: bool,
}

impl<S: CsvSource> Cursor<S> {
    /// The next CSV chunk (the header with the first page), or None at the end.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, CoreError> {
        let rows = self.source.page(self.after, EXPORT_PAGE).await?;
        if (rows.len() as u64) < EXPORT_PAGE {
            self.done = true;
        }
        if rows.is_empty() && !self.header {
            return Ok(None);
        }
        self.after = rows.last().map(|(id, _)| *id).or(self.after);
        let mut w = csv::Writer::from_writer(Vec::new());
        let io = |e: csv::Error| CoreError::Internal(format!("writing CSV: {e}"));
        if std::mem::take(&mut self.header) {
            w.write_record(S::COLUMNS).map_err(io)?;
        }
        for (_, cells) in &rows {
            w.write_record(cells).map_err(io)?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| CoreError::Internal(format!("writing CSV: {e}")))?;
        Ok(Some(Bytes::from(bytes)))
    }
}

/// A `200 text/csv` attachment named `filename`, streaming every page of `source`.
pub fn csv_response<S: CsvSource>(source: S, filename: &str) -> HttpResponse {
    let cursor = Cursor {
        source,
        after: None,
        header: true,
        done: false,
    };
    let body = futures_util::stream::unfold(cursor, |mut c| async move {
        if c.done {
            return None;
        }
        match c.next_chunk().await {
            Ok(Some(bytes)) => Some((Ok::<_, actix_web::Error>(bytes), c)),
            Ok(None) => None,
            Err(e) => {
                // Headers are gone already: end the body early so the client sees a truncated transfer.
                tracing::error!(error = %e, export = S::WHAT, "CSV export failed mid-stream");
                c.done = true;
                Some((
                    Err(actix_web::error::ErrorInternalServerError("export failed")),
                    c,
                ))
            }
        }
    });
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .streaming(body)
}

/// A timestamp cell: RFC 3339, seconds, UTC.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Text typed by people could start a spreadsheet formula (`=HYPERLINK(..)`): neutralise it.
pub fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn formulas_are_neutralised() {
        assert_eq!(cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(cell("+628123"), "'+628123");
        assert_eq!(cell("Budi"), "Budi");
    }
}
