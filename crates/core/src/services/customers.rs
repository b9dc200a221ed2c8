//! Customers (buyers on the sales floor). NIK and NPWP are personal data under UU PDP: stored
//! AES-256-GCM encrypted with a keyed hash for uniqueness and lookup, shown whole only to admins.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TryInsertResult,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, ActorRef, AuditEntry};
use crate::db::begin_write;
use crate::domain::Role;
use crate::entities::customers;
use crate::error::{CoreError, CoreResult, FieldError};
use crate::list::{FieldKind, ListField, ListQuery, ListSpec, Page};
use crate::services::identity_numbers::{
    Identifier, mask_identifier, nik_field, nik_field_pattern, normalize_phone, npwp_field,
    npwp_field_pattern, phone_pattern,
};
use crate::services::users::normalize_email;

/// `POST /customers` body, also the inline `customer` of `POST /bookings`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewCustomer {
    /// Full name.
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 200
    )]
    pub name: String,
    /// Indonesian mobile number: `08…`, `628…` or `+628…`, 10 to 13 digits nationally;
    /// spaces, dots, dashes, slashes and brackets between digits are ignored.
    #[schema(schema_with = phone_schema)]
    pub phone: String,
    /// Email.
    #[schema(
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s.\x00-\x1f\x7f-\x9f]+(\.[^@\s.\x00-\x1f\x7f-\x9f]+)+$",
        max_length = 320
    )]
    pub email: Option<String>,
    /// NIK: 16 digits; province code (digits 1-2) not 00; digits 7-12 the birth date as DDMMYY
    /// with 40 added to the day for women (29 February when YY is a multiple of 4); serial
    /// (13-16) not 0000. Separators between digits are ignored; blank counts as not given.
    #[schema(schema_with = nik_schema)]
    pub ktp_number: Option<String>,
    /// NPWP: 15 or 16 digits (15 get a leading 0). Separators between digits are ignored;
    /// blank counts as not given.
    #[schema(schema_with = npwp_schema)]
    pub npwp_number: Option<String>,
    /// Address.
    #[schema(max_length = 1000)]
    pub address: Option<String>,
}

/// A string field (nullable when `nullable`) whose `pattern` is the server's own rule.
fn pattern_schema(pattern: &str, nullable: bool, example: &str) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    let ty = if nullable {
        SchemaType::Array(vec![Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(ty)
        .pattern(Some(pattern))
        .examples([serde_json::json!(example)])
        .build()
}

fn phone_schema() -> utoipa::openapi::schema::Object {
    pattern_schema(phone_pattern(), false, "081234567890")
}

fn nik_schema() -> utoipa::openapi::schema::Object {
    pattern_schema(nik_field_pattern(), true, "3201015505900001")
}

fn npwp_schema() -> utoipa::openapi::schema::Object {
    pattern_schema(npwp_field_pattern(), true, "012345678901234")
}

/// A customer as the API shows it; NIK and NPWP are masked unless the viewer is an admin.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Phone, `+628…`.
    pub phone: String,
    /// Email.
    pub email: Option<String>,
    /// NIK (masked for marketing).
    pub ktp_number: Option<String>,
    /// NPWP (masked for marketing).
    pub npwp_number: Option<String>,
    /// Address.
    pub address: Option<String>,
    /// Who created it.
    pub created_by: Option<Uuid>,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Updated.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// A customer input that passed validation, with its personal data encrypted and hashed.
#[derive(Clone, Debug)]
pub struct ValidCustomer {
    name: String,
    phone: String,
    email: Option<String>,
    ktp: Option<(String, String)>,
    npwp: Option<(String, String)>,
    address: Option<String>,
}

/// The whitelist of `GET /customers`.
pub const CUSTOMER_LIST: ListSpec<customers::Column> = ListSpec {
    fields: &[
        ListField {
            name: "name",
            column: customers::Column::Name,
            kind: FieldKind::Text,
        },
        ListField {
            name: "phone",
            column: customers::Column::Phone,
            kind: FieldKind::Text,
        },
        ListField {
            name: "email",
            column: customers::Column::Email,
            kind: FieldKind::Text,
        },
        ListField {
            name: "createdBy",
            column: customers::Column::CreatedBy,
            kind: FieldKind::Uuid,
        },
        ListField {
            name: "createdAt",
            column: customers::Column::CreatedAt,
            kind: FieldKind::Timestamp,
        },
        ListField {
            name: "updatedAt",
            column: customers::Column::UpdatedAt,
            kind: FieldKind::Timestamp,
        },
    ],
    default_sort: &[(customers::Column::CreatedAt, true)],
    tiebreak: customers::Column::Id,
};

/// Optional text: trimmed, empty means absent.
fn opt_text(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl Services {
    /// Validates a customer, collecting field errors under `prefix` (`customer.`), and encrypts
    /// and hashes its NIK and NPWP.
    pub fn validate_customer(&self, c: &NewCustomer, prefix: &str) -> CoreResult<ValidCustomer> {
        let f = |name: &str| format!("{prefix}{name}");
        let mut errors = Vec::new();
        let name = c.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            errors.push(FieldError::new(
                &f("name"),
                "invalid",
                "1 to 200 printable characters",
            ));
        }
        let phone = normalize_phone(&c.phone);
        if phone.is_none() {
            errors.push(FieldError::new(
                &f("phone"),
                "invalid_phone",
                "an Indonesian mobile number: 08…, 628… or +628…, 10 to 13 digits",
            ));
        }
        let email = match opt_text(&c.email) {
            None => None,
            Some(e) => {
                let n = normalize_email(&e);
                if n.is_none() {
                    errors.push(FieldError::new(
                        &f("email"),
                        "invalid_email",
                        "not an email address",
                    ));
                }
                n
            }
        };
        // Judged by the same patterns the OpenAPI document publishes.
        let mut identifier =
            |value: &Option<String>,
             judge: fn(&str) -> Identifier,
             (field, code, message): (&str, &str, &str)| {
                match value.as_deref().map(judge) {
                    None | Some(Identifier::Absent) => None,
                    Some(Identifier::Digits(d)) => Some(d),
                    Some(Identifier::Invalid) => {
                        errors.push(FieldError::new(&f(field), code, message));
                        None
                    }
                }
            };
        let ktp = identifier(
            &c.ktp_number,
            nik_field,
            (
                "ktpNumber",
                "invalid_nik",
                "a NIK is 16 digits with a real birth date (DDMMYY, day + 40 for women) and a province code",
            ),
        );
        let npwp = identifier(
            &c.npwp_number,
            npwp_field,
            ("npwpNumber", "invalid_npwp", "an NPWP is 15 or 16 digits"),
        );
        let address = opt_text(&c.address);
        if address.as_ref().is_some_and(|a| a.chars().count() > 1000) {
            errors.push(FieldError::new(
                &f("address"),
                "too_long",
                "at most 1000 characters",
            ));
        }
        if !errors.is_empty() {
            return Err(CoreError::Validation(errors));
        }
        let seal = |v: Option<String>| -> CoreResult<Option<(String, String)>> {
            v.map(|v| Ok((self.pii.encrypt(&v)?, self.pii.keyed_hash(&v)?)))
                .transpose()
        };
        Ok(ValidCustomer {
            name,
            phone: phone.unwrap_or_default(),
            email,
            ktp: seal(ktp)?,
            npwp: seal(npwp)?,
            address,
        })
    }

    /// Shows a customer to a viewer of `role`: NIK and NPWP whole for admins, masked otherwise.
    pub fn customer_view(&self, m: customers::Model, role: Role) -> CoreResult<CustomerView> {
        let reveal = |enc: &Option<String>| -> CoreResult<Option<String>> {
            enc.as_deref()
                .map(|e| {
                    let clear = self.pii.decrypt(e)?;
                    Ok(if role == Role::Admin {
                        clear
                    } else {
                        mask_identifier(&clear)
                    })
                })
                .transpose()
        };
        Ok(CustomerView {
            ktp_number: reveal(&m.ktp_encrypted)?,
            npwp_number: reveal(&m.npwp_encrypted)?,
            id: m.id,
            name: m.name,
            phone: m.phone,
            email: m.email,
            address: m.address,
            created_by: m.created_by,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }

    /// The row a validated customer becomes when created now by `actor`, with a fresh id.
    pub(crate) fn new_customer_row(&self, actor: &ActorRef, c: ValidCustomer) -> customers::Model {
        let now = self.clock.now();
        customers::Model {
            id: Uuid::now_v7(),
            name: c.name,
            phone: c.phone,
            email: c.email,
            ktp_encrypted: c.ktp.as_ref().map(|(e, _)| e.clone()),
            ktp_hash: c.ktp.map(|(_, h)| h),
            npwp_encrypted: c.npwp.as_ref().map(|(e, _)| e.clone()),
            npwp_hash: c.npwp.map(|(_, h)| h),
            address: c.address,
            created_by: actor.user_id,
            created_at: now,
            updated_at: now,
        }
    }

    /// Inserts a validated customer in the caller's transaction. With `match_nik`, a customer
    /// with the same NIK is returned instead (`(model, created)`); without it, that is 409
    /// `duplicate_customer`. The caller writes [`Self::customer_created_audit`] when created.
    pub async fn insert_customer<C: ConnectionTrait>(
        &self,
        conn: &C,
        actor: &ActorRef,
        c: ValidCustomer,
        match_nik: bool,
    ) -> CoreResult<(customers::Model, bool)> {
        self.insert_customer_row(conn, self.new_customer_row(actor, c), match_nik)
            .await
    }

    /// [`Self::insert_customer`] for a row already built by [`Self::new_customer_row`].
    pub(crate) async fn insert_customer_row<C: ConnectionTrait>(
        &self,
        conn: &C,
        model: customers::Model,
        match_nik: bool,
    ) -> CoreResult<(customers::Model, bool)> {
        let ktp_hash = model.ktp_hash.clone();
        // Every column is written (`reset_all` marks them set), so the row equals `model`.
        let am = customers::ActiveModel::from(model.clone()).reset_all();
        // ON CONFLICT DO NOTHING: a concurrent insert of the same NIK neither aborts the
        // transaction (PostgreSQL) nor creates a second row; the existing row is read instead.
        let res = customers::Entity::insert(am)
            .on_conflict_do_nothing_on([customers::Column::KtpHash])
            .exec_without_returning(conn)
            .await?;
        if !matches!(res, TryInsertResult::Inserted(1)) {
            let Some(hash) = ktp_hash else {
                return Err(CoreError::Internal("customer insert did nothing".into()));
            };
            if !match_nik {
                return Err(CoreError::conflict(
                    "duplicate_customer",
                    "a customer with this ktpNumber already exists",
                ));
            }
            let existing = customers::Entity::find()
                .filter(customers::Column::KtpHash.eq(hash))
                .one(conn)
                .await?
                .ok_or_else(|| CoreError::Internal("conflicting customer vanished".into()))?;
            return Ok((existing, false));
        }
        Ok((model, true))
    }

    /// The `customer.created` audit record (personal data stays out of the audit trail).
    pub(crate) fn customer_created_audit(model: &customers::Model) -> AuditEntry<'static> {
        AuditEntry {
            action: "customer.created",
            entity_type: "customer",
            entity_id: model.id,
            old_values: None,
            new_values: Some(serde_json::json!({"name": model.name})),
        }
    }

    /// `POST /customers` (staff).
    pub async fn create_customer(
        &self,
        actor: &ActorRef,
        viewer: Role,
        input: NewCustomer,
    ) -> CoreResult<CustomerView> {
        let valid = self.validate_customer(&input, "")?;
        let txn = begin_write(&self.db).await?;
        let (model, _) = self.insert_customer(&txn, actor, valid, false).await?;
        audit::record(
            &txn,
            self.clock.as_ref(),
            actor,
            Self::customer_created_audit(&model),
        )
        .await?;
        txn.commit().await?;
        self.customer_view(model, viewer)
    }

    /// `GET /customers` (staff).
    pub async fn list_customers(
        &self,
        viewer: Role,
        query: &str,
    ) -> CoreResult<Page<CustomerView>> {
        let q = ListQuery::parse(query, &CUSTOMER_LIST)?;
        q.fetch(customers::Entity::find(), &self.db)
            .await?
            .try_map(|m| self.customer_view(m, viewer))
    }

    /// `GET /customers/{id}` (staff).
    pub async fn get_customer(&self, viewer: Role, id: Uuid) -> CoreResult<CustomerView> {
        let m = customers::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(CoreError::NotFound("customer"))?;
        self.customer_view(m, viewer)
    }
}
