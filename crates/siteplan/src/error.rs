//! Errors a designer can act on: what is wrong and where (line and column, both from 1).

/// Why a siteplan was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SvgErrorKind {
    /// Nothing but whitespace.
    #[error("the file is empty")]
    Empty,
    /// Bytes that are not UTF-8.
    #[error("the file is not UTF-8 text; save the SVG with UTF-8 encoding")]
    NotUtf8,
    /// The XML syntax is broken; the text comes from the XML parser.
    #[error("not well-formed XML: {0}")]
    Malformed(String),
    /// A `<!DOCTYPE>` (which is where entity declarations live).
    #[error(
        "DOCTYPE is not allowed in a siteplan (entity declarations are refused); export the SVG without a DOCTYPE"
    )]
    DocType,
    /// An entity reference other than the five XML ones or a character reference.
    #[error("unknown entity reference &{0}; (entities are never expanded)")]
    UnknownEntity(String),
    /// A character reference to a character XML does not allow.
    #[error("invalid character reference &{0};")]
    InvalidCharRef(String),
    /// The document element is not `<svg>`.
    #[error("the root element is <{0}>, expected <svg>")]
    RootNotSvg(String),
    /// No element at all.
    #[error("no <svg> root element found")]
    NoRoot,
    /// Markup or text after the closing `</svg>`.
    #[error("content after the closing </svg> of the root element")]
    ContentAfterRoot,
    /// Text before the root element.
    #[error("text before the <svg> root element")]
    TextBeforeRoot,
    /// An element opened and never closed before the end of the file.
    #[error("element <{0}> is never closed")]
    Unclosed(String),
    /// Nesting beyond [`crate::Limits::max_depth`].
    #[error("elements are nested deeper than {0} levels")]
    TooDeep(usize),
    /// More elements than [`crate::Limits::max_elements`].
    #[error("more than {0} elements")]
    TooManyElements(usize),
    /// Larger than the engine's 32-bit offsets can address (about 2 GiB).
    #[error("the file is too large")]
    TooLarge,
}

/// A refused siteplan: the reason and its position in the uploaded file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct SvgError {
    /// Line of the problem, from 1.
    pub line: usize,
    /// Column of the problem in characters, from 1.
    pub column: usize,
    /// What is wrong.
    pub kind: SvgErrorKind,
}

impl SvgError {
    /// Builds an error at a byte offset of `text`, computing line and column only now (the error path).
    pub(crate) fn at(text: &str, offset: usize, kind: SvgErrorKind) -> SvgError {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        SvgError { line, column, kind }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_designer_readable() {
        let text = "<svg>\n<g>\n  <!DOCTYPE";
        let e = SvgError::at(text, text.find("<!").unwrap(), SvgErrorKind::DocType);
        assert_eq!((e.line, e.column), (3, 3));
        assert!(
            e.to_string()
                .starts_with("line 3, column 3: DOCTYPE is not allowed in a siteplan")
        );
    }

    #[test]
    fn columns_count_characters() {
        let text = "ééé<x";
        let e = SvgError::at(text, text.find('<').unwrap(), SvgErrorKind::NoRoot);
        assert_eq!((e.line, e.column), (1, 4));
    }
}
