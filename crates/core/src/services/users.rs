//! Users: registration, login, profile, admin accounts, the KYC decision, and the role guards
//! every privileged action goes through.

use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, ActorRef, AuditEntry};
use crate::auth::{self, Claims};
use crate::db::begin_write;
use crate::domain::{KycStatus, Role};
use crate::entities::{users, wallets};
use crate::error::{CoreError, CoreResult, FieldError};

/// Shortest accepted password.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest accepted password (argon2 hashes anything; this bounds the work per request).
pub const MAX_PASSWORD_LEN: usize = 256;

/// A user as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// Id.
    pub id: Uuid,
    /// Email (lower case).
    pub email: String,
    /// Full name.
    pub full_name: String,
    /// Phone, if given.
    pub phone: Option<String>,
    /// Role.
    pub role: Role,
    /// True once e-KYC is approved.
    pub is_verified: bool,
    /// NONE, PENDING, APPROVED or REJECTED.
    pub kyc_status: KycStatus,
    /// Company (marketing agencies), from the KYC submission.
    pub company_name: Option<String>,
}

impl From<&users::Model> for UserView {
    fn from(u: &users::Model) -> Self {
        UserView {
            id: u.id,
            email: u.email.clone(),
            full_name: u.full_name.clone(),
            phone: u.phone.clone(),
            role: Role::parse(&u.role).unwrap_or(Role::Buyer),
            is_verified: u.is_verified,
            kyc_status: KycStatus::parse(&u.kyc_status).unwrap_or(KycStatus::None),
            company_name: u.company_name.clone(),
        }
    }
}

/// A token and the user it belongs to.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Session {
    /// Bearer token.
    pub token: String,
    /// The user.
    pub user: UserView,
}

/// `POST /auth/register` input.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterInput {
    /// Email.
    #[schema(
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s.\x00-\x1f\x7f-\x9f]+(\.[^@\s.\x00-\x1f\x7f-\x9f]+)+$",
        max_length = 320,
        example = "budi@example.com"
    )]
    pub email: String,
    /// Password, 8 to 256 characters.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
    /// Full name.
    #[schema(pattern = r"[^\s\x85]", max_length = 200)]
    pub full_name: String,
    /// Phone, optional.
    #[schema(max_length = 32)]
    pub phone: Option<String>,
    /// BUYER or MARKETING (ADMIN is refused with 403).
    #[schema(pattern = "^(BUYER|MARKETING)$", example = "BUYER")]
    pub role: String,
}

/// `POST /auth/login` input.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginInput {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// `POST /admin/users/{id}/kyc` input.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct KycDecisionInput {
    /// Approve or reject.
    pub approved: bool,
    /// Why (shown to the user on rejection).
    #[schema(max_length = 1000)]
    pub reason: Option<String>,
}

/// Lower-cases and trims an email; checks a plausible shape.
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.chars().count() <= 320
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@');
    ok.then_some(email)
}

pub(crate) async fn hash_off_thread(password: String) -> CoreResult<String> {
    // argon2 is deliberately slow; keep it off the async workers.
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| CoreError::Internal(format!("hashing task failed: {e}")))?
}

pub(crate) async fn verify_off_thread(password: String, hash: String) -> CoreResult<bool> {
    tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .map_err(|e| CoreError::Internal(format!("verify task failed: {e}")))
}

/// The columns of a new user that callers choose.
struct NewUserRow {
    email: String,
    password_hash: String,
    full_name: String,
    phone: Option<String>,
    role: Role,
    verified: bool,
}

/// Creates a BUYER row with a ready password hash (the benchmark seed: one hash for many).
pub(crate) async fn insert_buyer<C: ConnectionTrait>(
    conn: &C,
    svc: &Services,
    email: String,
    password_hash: String,
) -> CoreResult<users::Model> {
    insert_user(
        conn,
        svc,
        NewUserRow {
            email,
            password_hash,
            full_name: "Bench Watcher".to_owned(),
            phone: None,
            role: Role::Buyer,
            verified: false,
        },
    )
    .await
}

/// Creates a user row (and a wallet for marketing staff) inside a transaction.
async fn insert_user<C: ConnectionTrait>(
    conn: &C,
    svc: &Services,
    row: NewUserRow,
) -> CoreResult<users::Model> {
    let NewUserRow {
        email,
        password_hash,
        full_name,
        phone,
        role,
        verified,
    } = row;
    let now = svc.clock.now();
    let user = users::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email),
        password_hash: Set(password_hash),
        full_name: Set(full_name),
        phone: Set(phone),
        role: Set(role.as_str().to_owned()),
        is_verified: Set(verified),
        kyc_status: Set(if verified {
            KycStatus::Approved
        } else {
            KycStatus::None
        }
        .as_str()
        .to_owned()),
        kyc_reason: Set(None),
        company_name: Set(None),
        kyc_id_card_path: Set(None),
        kyc_selfie_path: Set(None),
        kyc_office_id_card_path: Set(None),
        kyc_submitted_at: Set(None),
        kyc_decided_at: Set(if verified { Some(now) } else { None }),
        kyc_decided_by: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        token_version: Set(0),
        disabled_at: Set(None),
        tokens_changed_at: Set(None),
    }
    .insert(conn)
    .await
    .map_err(|e| {
        if CoreError::is_unique_violation(&e) {
            CoreError::conflict("email_taken", "an account with this email already exists")
        } else {
            e.into()
        }
    })?;
    if role == Role::Marketing {
        wallets::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user.id),
            balance: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(conn)
        .await?;
    }
    Ok(user)
}

impl Services {
    fn session(&self, user: &users::Model) -> CoreResult<Session> {
        let view = UserView::from(user);
        let token = self.tokens.issue_versioned(
            user.id,
            view.role,
            user.token_version,
            self.clock.now().timestamp(),
        )?;
        Ok(Session { token, user: view })
    }

    /// Registers a BUYER or MARKETING user and signs them in.
    pub async fn register(&self, input: RegisterInput) -> CoreResult<Session> {
        let mut errors = Vec::new();
        let email = normalize_email(&input.email);
        if email.is_none() {
            errors.push(FieldError::new(
                "email",
                "invalid_email",
                "enter a valid email address",
            ));
        }
        if input.password.chars().count() < MIN_PASSWORD_LEN {
            errors.push(FieldError::new(
                "password",
                "too_short",
                format!("the password needs at least {MIN_PASSWORD_LEN} characters"),
            ));
        }
        if input.password.chars().count() > MAX_PASSWORD_LEN {
            errors.push(FieldError::new(
                "password",
                "too_long",
                "the password is too long",
            ));
        }
        let full_name = input.full_name.trim().to_owned();
        if full_name.is_empty() || full_name.chars().count() > 200 {
            errors.push(FieldError::new(
                "fullName",
                "required",
                "enter a name of at most 200 characters",
            ));
        }
        let role = match Role::parse(&input.role) {
            Some(Role::Admin) => {
                return Err(CoreError::forbidden(
                    "forbidden",
                    "admin accounts cannot be self-registered",
                ));
            }
            Some(r) => Some(r),
            None => {
                errors.push(FieldError::new(
                    "role",
                    "invalid_role",
                    "role must be BUYER or MARKETING",
                ));
                None
            }
        };
        let phone = input
            .phone
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty());
        if phone.is_some_and(|p| p.chars().count() > 32) {
            errors.push(FieldError::new(
                "phone",
                "too_long",
                "the phone number is too long",
            ));
        }
        let (Some(email), Some(role), true) = (email, role, errors.is_empty()) else {
            return Err(CoreError::Validation(errors));
        };
        let hash = hash_off_thread(input.password).await?;
        let txn = begin_write(&self.db).await?;
        let user = insert_user(
            &txn,
            self,
            NewUserRow {
                email,
                password_hash: hash,
                full_name,
                phone: phone.map(str::to_owned),
                role,
                verified: false,
            },
        )
        .await?;
        txn.commit().await?;
        self.session(&user)
    }

    /// Checks credentials and issues a token.
    pub async fn login(&self, input: LoginInput) -> CoreResult<Session> {
        let invalid = || CoreError::Unauthorized {
            code: "invalid_credentials",
            message: "the email or password is wrong".into(),
        };
        let email = normalize_email(&input.email).unwrap_or_default();
        let user = users::Entity::find()
            .filter(users::Column::Email.eq(email))
            .one(&self.db)
            .await?;
        // Verify against a dummy hash for unknown emails so timing does not reveal accounts.
        let hash = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| DUMMY_HASH.to_owned());
        let ok = verify_off_thread(input.password, hash).await?;
        match user {
            // Only the right password learns that the account is disabled.
            Some(u) if ok && u.disabled_at.is_some() => Err(CoreError::forbidden(
                "account_disabled",
                "this account has been disabled by an administrator",
            )),
            Some(u) if ok => self.session(&u),
            _ => Err(invalid()),
        }
    }

    /// Loads a user by id.
    pub async fn user(&self, id: Uuid) -> CoreResult<users::Model> {
        users::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(CoreError::NotFound("user"))
    }

    /// The user behind a verified token. A token for a deleted or disabled user, or one revoked
    /// (its version is not the user's: a password change or a disable since), is unauthorized.
    pub async fn current_user(&self, claims: &Claims) -> CoreResult<users::Model> {
        let unauthorized = |message: &str| CoreError::Unauthorized {
            code: "unauthorized",
            message: message.into(),
        };
        let user = users::Entity::find_by_id(claims.sub)
            .one(&self.db)
            .await?
            .ok_or_else(|| unauthorized("the account behind this token no longer exists"))?;
        if user.disabled_at.is_some() {
            return Err(unauthorized("this account has been disabled"));
        }
        if user.token_version != claims.ver {
            return Err(unauthorized(
                "this token was revoked (password changed or account disabled); sign in again",
            ));
        }
        Ok(user)
    }

    /// Creates (or promotes) an administrator account; used by `kavling admin create` and the seed.
    pub async fn create_admin(
        &self,
        email: &str,
        password: &str,
        full_name: &str,
    ) -> CoreResult<users::Model> {
        self.create_user_with_role(email, password, full_name, Role::Admin, true)
            .await
    }

    /// Creates a user of any role, optionally verified (the seed, the CLI and tests).
    pub async fn create_user_with_role(
        &self,
        email: &str,
        password: &str,
        full_name: &str,
        role: Role,
        verified: bool,
    ) -> CoreResult<users::Model> {
        let email = normalize_email(email).ok_or_else(|| {
            CoreError::invalid_field("email", "invalid_email", "enter a valid email address")
        })?;
        let length = password.chars().count();
        if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&length) {
            return Err(CoreError::invalid_field(
                "password",
                "invalid_length",
                format!("the password needs {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters"),
            ));
        }
        let hash = hash_off_thread(password.to_owned()).await?;
        let txn = begin_write(&self.db).await?;
        let user = insert_user(
            &txn,
            self,
            NewUserRow {
                email,
                password_hash: hash,
                full_name: full_name.to_owned(),
                phone: None,
                role,
                verified,
            },
        )
        .await?;
        txn.commit().await?;
        Ok(user)
    }

    /// Records an admin's KYC decision, with its audit row, in one transaction.
    pub async fn decide_kyc(
        &self,
        actor: &ActorRef,
        user_id: Uuid,
        input: KycDecisionInput,
    ) -> CoreResult<UserView> {
        if input
            .reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > 1000)
        {
            return Err(CoreError::invalid_field(
                "reason",
                "too_long",
                "the reason is at most 1000 characters",
            ));
        }
        let txn = begin_write(&self.db).await?;
        let user = users::Entity::find_by_id(user_id)
            .one(&txn)
            .await?
            .ok_or(CoreError::NotFound("user"))?;
        let now = self.clock.now();
        let new_status = if input.approved {
            KycStatus::Approved
        } else {
            KycStatus::Rejected
        };
        let old = serde_json::json!({"isVerified": user.is_verified, "kycStatus": user.kyc_status});
        let mut active: users::ActiveModel = user.into();
        active.is_verified = Set(input.approved);
        active.kyc_status = Set(new_status.as_str().to_owned());
        active.kyc_reason = Set(input.reason.clone());
        active.kyc_decided_at = Set(Some(now));
        active.kyc_decided_by = Set(actor.user_id);
        active.updated_at = Set(now);
        let updated = active.update(&txn).await?;
        audit::record(
            &txn,
            self.clock.as_ref(),
            actor,
            AuditEntry {
                action: "kyc.decided",
                entity_type: "user",
                entity_id: user_id,
                old_values: Some(old),
                new_values: Some(serde_json::json!({
                    "isVerified": input.approved,
                    "kycStatus": new_status.as_str(),
                    "reason": input.reason,
                })),
            },
        )
        .await?;
        txn.commit().await?;
        Ok(UserView::from(&updated))
    }
}

/// What a privileged route demands of the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Any signed-in user.
    Authenticated,
    /// ADMIN only.
    Admin,
    /// BUYER only.
    Buyer,
    /// ADMIN, or MARKETING whatever its KYC state (reading).
    Staff,
    /// ADMIN, or MARKETING with approved e-KYC (booking, status changes, unlocking).
    VerifiedStaff,
    /// MARKETING with approved e-KYC only.
    VerifiedMarketing,
}

/// Checks a user (freshly read from the database) against a route's demand.
pub fn authorize(user: &users::Model, access: Access) -> CoreResult<Role> {
    let role =
        Role::parse(&user.role).ok_or_else(|| CoreError::forbidden("forbidden", "unknown role"))?;
    let verified = user.is_verified && user.kyc_status == KycStatus::Approved.as_str();
    let wrong_role = || CoreError::forbidden("forbidden", "your role may not do this");
    let kyc = || {
        CoreError::forbidden(
            "kyc_required",
            "your e-KYC verification must be approved first",
        )
    };
    match access {
        Access::Authenticated => Ok(role),
        Access::Admin => (role == Role::Admin).then_some(role).ok_or_else(wrong_role),
        Access::Buyer => (role == Role::Buyer).then_some(role).ok_or_else(wrong_role),
        Access::Staff => matches!(role, Role::Admin | Role::Marketing)
            .then_some(role)
            .ok_or_else(wrong_role),
        Access::VerifiedStaff => match role {
            Role::Admin => Ok(role),
            Role::Marketing if verified => Ok(role),
            Role::Marketing => Err(kyc()),
            Role::Buyer => Err(wrong_role()),
        },
        Access::VerifiedMarketing => match role {
            Role::Marketing if verified => Ok(role),
            Role::Marketing => Err(kyc()),
            _ => Err(wrong_role()),
        },
    }
}

/// An argon2id hash of a random string, verified against when the email is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Bx9kkbSHpkTDM2P1zLqkyvM6hEHdB1UXxeYh8PHZLa4";

impl Services {
    /// Re-reads the token's user from the database and checks it against a route's demand, so
    /// role and KYC changes take effect at once.
    pub async fn require(&self, claims: &Claims, access: Access) -> CoreResult<users::Model> {
        let user = self.current_user(claims).await?;
        authorize(&user, access)?;
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email(" Budi@Example.COM "),
            Some("budi@example.com".into())
        );
        for bad in [
            "",
            "budi",
            "@x.com",
            "budi@",
            "budi@x",
            "bu di@x.com",
            "a@b@c.com",
            "a@.com",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad}");
        }
    }

    #[test]
    fn dummy_hash_parses() {
        assert!(!auth::verify_password("whatever", DUMMY_HASH));
        assert!(argon2::password_hash::phc::PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
