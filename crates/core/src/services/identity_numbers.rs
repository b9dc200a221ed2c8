//! Indonesian identifiers: NIK (the KTP number), NPWP (tax number) and mobile phone numbers.
//!
//! Each rule is one regular expression, written once here: the server accepts a value exactly
//! when it matches, and the OpenAPI document publishes the same string as the field's `pattern`
//! (see [`nik_field_pattern`]), so generated clients and the server agree. The patterns use only
//! what ECMA-262 (JSON Schema), Python's `re` and Rust's `regex` read alike: ASCII classes,
//! non-capturing groups, bounded repeats and `^…$` anchors.

use std::sync::LazyLock;

use regex::Regex;

/// Characters people type between digit groups (space, tab, `.`, `/`, `(`, `)`, `-`), any number.
const SEP: &str = "[ ./()\\t-]*";

/// One digit of class `class`, then any separators.
fn digit(class: &str) -> String {
    format!("{class}{SEP}")
}

/// Digits of the given classes in a row, each followed by any separators.
fn digits(classes: &[&str]) -> String {
    classes.iter().map(|c| digit(c)).collect()
}

/// `(?:a|b|…)`.
fn any_of(parts: &[String]) -> String {
    format!("(?:{})", parts.join("|"))
}

/// A NIK, unanchored: province code (digits 1-2) not 00; regency and district (3-6) any;
/// digits 7-12 a real date as DDMMYY with 40 added to the day for women; serial (13-16) not
/// 0000. The century is not encoded, so 29 February is real when YY is a multiple of 4 (2000
/// was a leap year, and 1904…1996 were).
fn nik_body() -> String {
    let province = any_of(&[digits(&["0", "[1-9]"]), digits(&["[1-9]", "[0-9]"])]);
    let region = digits(&["[0-9]"; 4]);
    // Days for a man, then the same days + 40 for a woman.
    let days = |last_tens: &str, last_units: &str, feb: bool| {
        let mut v = vec![
            digits(&["0", "[1-9]"]),
            digits(&[if feb { "1" } else { "[12]" }, "[0-9]"]),
            digits(&["4", "[1-9]"]),
            digits(&[if feb { "5" } else { "[56]" }, "[0-9]"]),
        ];
        if feb {
            v.push(digits(&["2", "[0-8]"]));
            v.push(digits(&["6", "[0-8]"]));
        } else {
            v.push(digits(&[last_tens, last_units]));
            let woman = if last_tens == "3" { "7" } else { last_tens };
            v.push(digits(&[woman, last_units]));
        }
        any_of(&v)
    };
    let year = digits(&["[0-9]", "[0-9]"]);
    let leap_year = any_of(&[digits(&["[02468]", "[048]"]), digits(&["[13579]", "[26]"])]);
    let long_months = any_of(&[digits(&["0", "[13578]"]), digits(&["1", "[02]"])]);
    let short_months = any_of(&[digits(&["0", "[469]"]), digits(&["1", "1"])]);
    let february = digits(&["0", "2"]);
    let date = any_of(&[
        format!("{}{long_months}{year}", days("3", "[01]", false)),
        format!("{}{short_months}{year}", days("3", "0", false)),
        format!("{}{february}{year}", days("", "", true)),
        format!(
            "{}{february}{leap_year}",
            any_of(&[digits(&["2", "9"]), digits(&["6", "9"])])
        ),
    ]);
    let serial = any_of(&[
        digits(&["[1-9]", "[0-9]", "[0-9]", "[0-9]"]),
        digits(&["0", "[1-9]", "[0-9]", "[0-9]"]),
        digits(&["0", "0", "[1-9]", "[0-9]"]),
        digits(&["0", "0", "0", "[1-9]"]),
    ]);
    format!("{SEP}{province}{region}{date}{serial}")
}

/// An optional identifier field: blank (empty, spaces or tabs) means not given.
fn optional_field(body: &str) -> String {
    format!("^(?:[ \\t]*|{body})$")
}

static NIK_FIELD: LazyLock<String> = LazyLock::new(|| optional_field(&nik_body()));
static NPWP_FIELD: LazyLock<String> =
    LazyLock::new(|| optional_field(&format!("{SEP}(?:[0-9]{SEP}){{15,16}}")));
static PHONE_FIELD: LazyLock<String> = LazyLock::new(|| {
    // `08…`, `628…` or `+628…`: 8 and then 8 to 11 more digits (10 to 13 nationally).
    let trunk = any_of(&[
        format!("\\+{SEP}{}", digits(&["6", "2"])),
        digits(&["6", "2"]),
        digit("0"),
    ]);
    format!("^{SEP}{trunk}{}(?:[0-9]{SEP}){{8,11}}$", digit("8"))
});

/// Compiles one of the patterns above; they are fixed strings, tested below.
fn compiled(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}

static NIK_RE: LazyLock<Option<Regex>> = LazyLock::new(|| compiled(&NIK_FIELD));
static NPWP_RE: LazyLock<Option<Regex>> = LazyLock::new(|| compiled(&NPWP_FIELD));
static PHONE_RE: LazyLock<Option<Regex>> = LazyLock::new(|| compiled(&PHONE_FIELD));

/// The `ktpNumber` rule as a pattern: blank, or a NIK with optional separators.
pub fn nik_field_pattern() -> &'static str {
    &NIK_FIELD
}

/// The `npwpNumber` rule as a pattern: blank, or 15 or 16 digits with optional separators.
pub fn npwp_field_pattern() -> &'static str {
    &NPWP_FIELD
}

/// The `phone` rule (customers) as a pattern: an Indonesian mobile number.
pub fn phone_pattern() -> &'static str {
    &PHONE_FIELD
}

/// What an optional identifier field holds, judged by its pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identifier {
    /// Blank: not given.
    Absent,
    /// Valid; its digits.
    Digits(String),
    /// Does not match the pattern.
    Invalid,
}

fn ascii_digits(raw: &str) -> String {
    raw.chars().filter(char::is_ascii_digit).collect()
}

fn judge(re: &LazyLock<Option<Regex>>, raw: &str) -> Identifier {
    match re.as_ref() {
        Some(re) if re.is_match(raw) => {
            let d = ascii_digits(raw);
            if d.is_empty() {
                Identifier::Absent
            } else {
                Identifier::Digits(d)
            }
        }
        _ => Identifier::Invalid,
    }
}

/// A `ktpNumber` value: blank, or a NIK ([`nik_field_pattern`]) given as its 16 digits.
pub fn nik_field(raw: &str) -> Identifier {
    judge(&NIK_RE, raw)
}

/// An `npwpNumber` value: blank, or an NPWP given as 16 digits (the old 15-digit form gets a
/// leading 0).
pub fn npwp_field(raw: &str) -> Identifier {
    match judge(&NPWP_RE, raw) {
        Identifier::Digits(d) if d.len() == 15 => Identifier::Digits(format!("0{d}")),
        other => other,
    }
}

/// A NIK ([`nik_field_pattern`], not blank): its 16 digits, or `None`.
pub fn normalize_nik(raw: &str) -> Option<String> {
    match nik_field(raw) {
        Identifier::Digits(d) => Some(d),
        _ => None,
    }
}

/// An NPWP (not blank): 16 digits, or `None`.
pub fn normalize_npwp(raw: &str) -> Option<String> {
    match npwp_field(raw) {
        Identifier::Digits(d) => Some(d),
        _ => None,
    }
}

/// An Indonesian mobile number ([`phone_pattern`]), normalised to `+628…`.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let matches = PHONE_RE.as_ref().is_some_and(|re| re.is_match(raw));
    if !matches {
        return None;
    }
    let d = ascii_digits(raw);
    let subscriber = d.strip_prefix("62").or_else(|| d.strip_prefix('0'))?;
    Some(format!("+62{subscriber}"))
}

/// Masks an identifier for staff who may see only its ends: `3201********0001`.
pub fn mask_identifier(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let start: String = chars[..4].iter().collect();
    let end: String = chars[chars.len() - 4..].iter().collect();
    format!("{start}{}{end}", "*".repeat(chars.len() - 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule as it was written before the patterns, digit by digit: the oracle the patterns
    /// must agree with.
    mod oracle {
        use chrono::NaiveDate;

        fn digits_only(raw: &str) -> Option<String> {
            let mut out = String::new();
            for c in raw.chars() {
                if c.is_ascii_digit() {
                    out.push(c);
                } else if !matches!(c, ' ' | '.' | '-' | '/' | '(' | ')' | '\t') {
                    return None;
                }
            }
            Some(out)
        }

        pub fn nik(raw: &str) -> Option<String> {
            let nik = digits_only(raw)?;
            if nik.len() != 16 || &nik[..2] == "00" || &nik[12..] == "0000" {
                return None;
            }
            let num = |r: std::ops::Range<usize>| nik[r].parse::<u32>().ok();
            let mut day = num(6..8)?;
            let (month, yy) = (num(8..10)?, num(10..12)?);
            if day > 40 {
                day -= 40;
            }
            let real = [1900, 2000].iter().any(|c| {
                NaiveDate::from_ymd_opt(i32::try_from(c + yy).unwrap_or(0), month, day).is_some()
            });
            real.then_some(nik)
        }

        pub fn phone(raw: &str) -> Option<String> {
            let (plus, rest) = match raw.strip_prefix('+') {
                Some(r) => (true, r),
                None => (false, raw),
            };
            let digits = digits_only(rest)?;
            let subscriber = if let Some(s) = digits.strip_prefix("62") {
                s
            } else if !plus && let Some(s) = digits.strip_prefix('0') {
                s
            } else {
                return None;
            };
            (subscriber.starts_with('8') && (9..=12).contains(&subscriber.len()))
                .then(|| format!("+62{subscriber}"))
        }
    }

    /// Every DDMM of every YY, for men and women, with two provinces and serials, with and
    /// without separators: the pattern and the date arithmetic agree on all 2.4 million.
    #[test]
    fn nik_pattern_agrees_with_the_calendar() {
        let mut checked = 0;
        for dd in 0..100 {
            for mm in 0..100 {
                for yy in 0..100 {
                    for (prov, serial, sep) in
                        [("32", "0001", ""), ("00", "1000", " "), ("91", "0000", ".")]
                    {
                        let raw = format!("{prov}0101{sep}{dd:02}{mm:02}{yy:02}{sep}{serial}");
                        assert_eq!(normalize_nik(&raw), oracle::nik(&raw), "{raw}");
                        checked += 1;
                    }
                }
            }
            if dd % 10 == 0 {
                // Separators anywhere, also at both ends.
                let raw = format!("(32) 01-01 {dd:02}.05.90/0001\t");
                assert_eq!(normalize_nik(&raw), oracle::nik(&raw), "{raw}");
            }
        }
        assert_eq!(checked, 3_000_000);
    }

    /// Phones of every length from 7 to 15 digits after each trunk prefix, with separators.
    #[test]
    fn phone_pattern_agrees_with_the_oracle() {
        for prefix in ["0", "62", "+62", "+ 62", "+0", "6", "+", "", "0062", "(0"] {
            for first in ['7', '8', '9'] {
                for len in 5..=14 {
                    let rest: String = std::iter::once(first)
                        .chain((0..len).map(|i| char::from(b'0' + (i % 10) as u8)))
                        .collect();
                    for sep in ["", "-", " ", "."] {
                        let mid = rest.len() / 2;
                        let raw = format!("{prefix}{sep}{}{sep}{}", &rest[..mid], &rest[mid..]);
                        assert_eq!(normalize_phone(&raw), oracle::phone(&raw), "{raw}");
                    }
                }
            }
        }
    }

    #[test]
    fn blank_identifiers_are_absent() {
        for raw in ["", "   ", "\t"] {
            assert_eq!(nik_field(raw), Identifier::Absent, "{raw:?}");
            assert_eq!(npwp_field(raw), Identifier::Absent, "{raw:?}");
        }
        for raw in [".", "-", "()", "\n", "\u{a0}"] {
            assert_eq!(nik_field(raw), Identifier::Invalid, "{raw:?}");
            assert_eq!(npwp_field(raw), Identifier::Invalid, "{raw:?}");
        }
    }

    #[test]
    fn niks() {
        let good = [
            ("3201011505900001", "3201011505900001"), // man, 15 May 1990
            ("3201015505900002", "3201015505900002"), // woman, 15 May 1990 (55 = 15 + 40)
            ("3174 0129 0200 0003", "3174012902000003"), // 29 Feb 2000, spaces ignored
            ("32.01.01-150590.0001", "3201011505900001"), // separators ignored
            ("9171017112990001", "9171017112990001"), // woman, 31 Dec 1999
        ];
        for (raw, want) in good {
            assert_eq!(normalize_nik(raw).as_deref(), Some(want), "{raw}");
        }
        let bad = [
            "",
            "320101150590000",   // 15 digits
            "32010115059000011", // 17 digits
            "0001011505900001",  // province 00
            "3201013202900001",  // 32 February
            "3201017202900001",  // woman's day 72 = 32
            "3201011513900001",  // month 13
            "3201010005900001",  // day 00
            "3201014005900001",  // day 40 (0 for a woman)
            "3201012902010001",  // 29 Feb 1901 / 2001: no leap year
            "3201011505900000",  // serial 0000
            "32010115059O0001",  // letter O
            "3201011505900001x", // trailing junk
        ];
        for raw in bad {
            assert_eq!(normalize_nik(raw), None, "{raw}");
        }
    }

    #[test]
    fn npwps() {
        assert_eq!(
            normalize_npwp("09.254.294.3-407.000").as_deref(),
            Some("0092542943407000")
        );
        assert_eq!(
            normalize_npwp("3201011505900001").as_deref(),
            Some("3201011505900001")
        );
        assert_eq!(
            normalize_npwp("012345678901234").as_deref(),
            Some("0012345678901234")
        );
        for bad in [
            "",
            "09.254.294.3-407",
            "12345678901234567",
            "09.254.294.3-407.00A",
            "09_254_294_3_407_000",
        ] {
            assert_eq!(normalize_npwp(bad), None, "{bad}");
        }
    }

    #[test]
    fn phones() {
        let good = [
            ("081234567890", "+6281234567890"),
            ("0812-3456-7890", "+6281234567890"),
            ("+62 812 3456 7890", "+6281234567890"),
            ("6281234567890", "+6281234567890"),
            ("0812345678", "+62812345678"),       // 10 digits
            ("0812345678901", "+62812345678901"), // 13 digits
            ("(0812) 345.678", "+62812345678"),
        ];
        for (raw, want) in good {
            assert_eq!(normalize_phone(raw).as_deref(), Some(want), "{raw}");
        }
        let bad = [
            "",
            "081234567",      // 9 digits
            "08123456789012", // 14 digits
            "0212345678",     // Jakarta landline
            "+6221234567",    // landline
            "+081234567890",  // plus with a trunk 0
            "+1 812 345 6789",
            "0812345678a",
            "812345678",
            "++6281234567890",
        ];
        for raw in bad {
            assert_eq!(normalize_phone(raw), None, "{raw}");
        }
    }

    #[test]
    fn masks() {
        assert_eq!(mask_identifier("3201011505900001"), "3201********0001");
        assert_eq!(mask_identifier("0092542943407000"), "0092********7000");
        assert_eq!(mask_identifier("1234"), "****");
    }
}
