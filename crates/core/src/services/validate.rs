//! Indonesian identifiers: NIK (the KTP number), NPWP (tax number) and mobile phone numbers.
//! Each validator returns the normalised form or `None`.

use chrono::NaiveDate;

/// Characters people type between digit groups; ignored everywhere.
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '.' | '-' | '/' | '(' | ')' | '\t')
}

/// The digits of `raw` if it holds only digits and separators.
fn digits_only(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_ascii_digit() {
            out.push(c);
        } else if !is_separator(c) {
            return None;
        }
    }
    Some(out)
}

/// A NIK: 16 digits; province code (digits 1-2) not 00; digits 7-12 a real date as DDMMYY,
/// with 40 added to the day for women; serial (13-16) not 0000. Returns the 16 digits.
pub fn normalize_nik(raw: &str) -> Option<String> {
    let nik = digits_only(raw)?;
    if nik.len() != 16 || &nik[..2] == "00" || &nik[12..] == "0000" {
        return None;
    }
    let num = |r: std::ops::Range<usize>| nik.get(r).and_then(|s| s.parse::<u32>().ok());
    let mut day = num(6..8)?;
    let month = num(8..10)?;
    let yy = num(10..12)?;
    if day > 40 {
        day -= 40;
    }
    // The century is not encoded: a date valid in either 19YY or 20YY is real (29 February).
    let real = [1900, 2000].iter().any(|c| {
        i32::try_from(c + yy)
            .ok()
            .and_then(|y| NaiveDate::from_ymd_opt(y, month, day))
            .is_some()
    });
    real.then_some(nik)
}

/// An NPWP: 15 digits (the old format, normalised to 16 with a leading 0) or 16 digits.
pub fn normalize_npwp(raw: &str) -> Option<String> {
    let npwp = digits_only(raw)?;
    match npwp.len() {
        15 => Some(format!("0{npwp}")),
        16 => Some(npwp),
        _ => None,
    }
}

/// An Indonesian mobile number (`08…`, `628…`, `+628…`; 10 to 13 digits in the national
/// `08…` form), normalised to `+628…`.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let (plus, rest) = match trimmed.strip_prefix('+') {
        Some(r) => (true, r),
        None => (false, trimmed),
    };
    let digits = digits_only(rest)?;
    // The subscriber part after the trunk prefix: it starts with 8 for mobiles.
    let subscriber = if let Some(s) = digits.strip_prefix("62") {
        s
    } else if !plus && let Some(s) = digits.strip_prefix('0') {
        s
    } else {
        return None;
    };
    // `08` + 8..11 more digits = 10..13 digits nationally.
    if !subscriber.starts_with('8') || !(9..=12).contains(&subscriber.len()) {
        return None;
    }
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
