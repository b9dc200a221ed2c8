//! The status vocabularies of the contract, stored as strings and spoken as SCREAMING_SNAKE_CASE.

use serde::{Deserialize, Serialize};

/// Declares a string-backed enum with `as_str`, `parse` and the list of all values.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        // Variants are CamelCase spellings of their SCREAMING_SNAKE_CASE wire names, so one
        // `rename_all` serves serde and the OpenAPI schema alike.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name {
            $(
                #[doc = $text]
                $variant,
            )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [&'static str] = &[$($text),+];

            /// The stored and wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// Parses the wire spelling (exact match).
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// A user's role.
    Role { Buyer => "BUYER", Marketing => "MARKETING", Admin => "ADMIN" }
);

string_enum!(
    /// Where a user's e-KYC verification stands.
    KycStatus { None => "NONE", Pending => "PENDING", Approved => "APPROVED", Rejected => "REJECTED" }
);

string_enum!(
    /// A unit's sales status.
    UnitStatus { Available => "AVAILABLE", Booked => "BOOKED", Sold => "SOLD", Maintenance => "MAINTENANCE" }
);

string_enum!(
    /// A booking's lifecycle status.
    BookingStatus {
        PendingPayment => "PENDING_PAYMENT",
        Active => "ACTIVE",
        Completed => "COMPLETED",
        Cancelled => "CANCELLED",
    }
);

string_enum!(
    /// A booking's payment status.
    PaymentStatus { Pending => "PENDING", Paid => "PAID", Overdue => "OVERDUE" }
);

string_enum!(
    /// How a booking is paid.
    PaymentMethod { Transfer => "TRANSFER", Cash => "CASH", Check => "CHECK", Credit => "CREDIT" }
);

string_enum!(
    /// The kind of a wallet ledger row.
    WalletTxType { Topup => "TOPUP", Debit => "DEBIT", Refund => "REFUND" }
);

string_enum!(
    /// What an invoice of a booking's payment schedule is for.
    InvoiceKind {
        BookingFee => "BOOKING_FEE",
        DownPayment => "DOWN_PAYMENT",
        Installment => "INSTALLMENT",
        Kpr => "KPR",
    }
);

string_enum!(
    /// Where an invoice stands.
    InvoiceStatus {
        Unpaid => "UNPAID",
        AwaitingVerification => "AWAITING_VERIFICATION",
        Paid => "PAID",
        Overdue => "OVERDUE",
        Void => "VOID",
    }
);

string_enum!(
    /// Where a submitted payment (with its proof) stands.
    PaymentProofStatus {
        AwaitingVerification => "AWAITING_VERIFICATION",
        Verified => "VERIFIED",
        Rejected => "REJECTED",
    }
);

string_enum!(
    /// Why a marketing user disputes an unlocked lead.
    DisputeReason {
        WrongNumber => "WRONG_NUMBER",
        NotInterested => "NOT_INTERESTED",
        Duplicate => "DUPLICATE",
        Other => "OTHER",
    }
);

string_enum!(
    /// Where a lead dispute stands.
    DisputeStatus { Open => "OPEN", Approved => "APPROVED", Rejected => "REJECTED" }
);

impl UnitStatus {
    /// The contract's default colour for this status (from the one table, `kavling-status`).
    pub fn default_color(self) -> &'static str {
        // Total: `the_enum_and_the_status_table_agree` keeps the enum and the table equal.
        kavling_status::status_color(self.as_str()).unwrap_or_default()
    }
}

/// The colour of a stored status string, falling back to grey for anything unknown.
pub fn color_of(status: &str) -> &'static str {
    UnitStatus::parse(status)
        .unwrap_or(UnitStatus::Maintenance)
        .default_color()
}

/// A project's palette: optional per-status overrides of the contract colours.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub struct Palette {
    /// Colour of AVAILABLE units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^#[0-9a-fA-F]{6}$", example = "#16a34a")]
    pub available: Option<String>,
    /// Colour of BOOKED units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    pub booked: Option<String>,
    /// Colour of SOLD units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    pub sold: Option<String>,
    /// Colour of MAINTENANCE units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    pub maintenance: Option<String>,
}

// Written by hand so only a JSON object is a palette (the derive would also take an array).
impl<'de> Deserialize<'de> for Palette {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, Option<String>>::deserialize(d)?;
        let mut palette = Palette::default();
        for (status, color) in map {
            let slot = match UnitStatus::parse(&status) {
                Some(UnitStatus::Available) => &mut palette.available,
                Some(UnitStatus::Booked) => &mut palette.booked,
                Some(UnitStatus::Sold) => &mut palette.sold,
                Some(UnitStatus::Maintenance) => &mut palette.maintenance,
                None => {
                    return Err(serde::de::Error::custom(format!(
                        "`{status}` is not a unit status"
                    )));
                }
            };
            *slot = color;
        }
        Ok(palette)
    }
}

impl Palette {
    fn override_for(&self, status: &str) -> Option<&String> {
        match UnitStatus::parse(status)? {
            UnitStatus::Available => self.available.as_ref(),
            UnitStatus::Booked => self.booked.as_ref(),
            UnitStatus::Sold => self.sold.as_ref(),
            UnitStatus::Maintenance => self.maintenance.as_ref(),
        }
    }

    /// The colour for a status under this palette.
    pub fn color(&self, status: &str) -> String {
        self.override_for(status)
            .cloned()
            .unwrap_or_else(|| color_of(status).to_owned())
    }

    /// True when nothing is overridden.
    pub fn is_default(&self) -> bool {
        *self == Palette::default()
    }

    /// True when every override is a `#rrggbb` colour.
    pub fn is_valid(&self) -> bool {
        [&self.available, &self.booked, &self.sold, &self.maintenance]
            .into_iter()
            .flatten()
            .all(|c| {
                c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|d| d.is_ascii_hexdigit())
            })
    }

    /// Reads a palette from the stored JSON, ignoring anything malformed.
    pub fn from_json(value: Option<&serde_json::Value>) -> Palette {
        value
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_spelling_matches_the_stored_spelling() {
        for s in BookingStatus::ALL {
            let v: BookingStatus = serde_json::from_str(&format!("\"{s}\"")).unwrap();
            assert_eq!(v.as_str(), *s);
        }
        for s in UnitStatus::ALL
            .iter()
            .chain(Role::ALL)
            .chain(KycStatus::ALL)
            .chain(PaymentMethod::ALL)
        {
            assert!(serde_json::from_str::<serde_json::Value>(&format!("\"{s}\"")).is_ok());
        }
        assert_eq!(
            serde_json::to_string(&WalletTxType::Topup).unwrap(),
            "\"TOPUP\""
        );
        assert_eq!(
            serde_json::to_string(&PaymentStatus::Overdue).unwrap(),
            "\"OVERDUE\""
        );
    }

    #[test]
    fn round_trips_and_rejects_unknown() {
        for s in UnitStatus::ALL {
            assert_eq!(UnitStatus::parse(s).map(UnitStatus::as_str), Some(*s));
        }
        assert_eq!(UnitStatus::parse("available"), None);
        assert_eq!(
            serde_json::to_string(&BookingStatus::PendingPayment).unwrap(),
            "\"PENDING_PAYMENT\""
        );
        assert_eq!(color_of("SOLD"), "#ef4444");
    }

    #[test]
    fn the_enum_and_the_status_table_agree() {
        let table: Vec<&str> = kavling_status::UNIT_STATUSES
            .iter()
            .map(|s| s.key)
            .collect();
        assert_eq!(UnitStatus::ALL, table.as_slice());
        for s in UnitStatus::ALL {
            let status = UnitStatus::parse(s).unwrap();
            assert_eq!(
                Some(status.default_color()),
                kavling_status::status_color(s)
            );
        }
        assert_eq!(
            color_of("nonsense"),
            kavling_status::status_color("MAINTENANCE").unwrap()
        );
    }

    #[test]
    fn palette_overrides_one_status_and_rejects_unknown_keys() {
        let p = Palette::from_json(Some(&serde_json::json!({"SOLD": "#000000"})));
        assert_eq!(p.color("SOLD"), "#000000");
        assert_eq!(p.color("AVAILABLE"), "#22c55e");
        assert!(p.is_valid());
        assert!(serde_json::from_value::<Palette>(serde_json::json!({"PINK": "#000000"})).is_err());
        assert!(serde_json::from_value::<Palette>(serde_json::json!([null, null])).is_err());
        let bad: Palette = serde_json::from_value(serde_json::json!({"BOOKED": "yellow"})).unwrap();
        assert!(!bad.is_valid());
    }
}
