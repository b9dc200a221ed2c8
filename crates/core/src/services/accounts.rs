//! Accounts: the admins' user list (the KYC queue), password changes, disabling and enabling.
//!
//! A password change or a disable increments the user's `token_version` in the same transaction
//! (a conditional update), which revokes every token issued before: `current_user` refuses a
//! token whose `ver` is not the user's. After commit the revocation goes on the bus so every
//! instance closes that user's WebSockets at once; the hubs' catch-up also reads it from `users`
//! (`tokens_changed_at`), so a lost bus message costs at most one catch-up interval.

use chrono::{DateTime, Utc};
use kavling_realtime::Revocation;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, ExprTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, ActorRef, AuditEntry};
use crate::db::begin_write;
use crate::domain::{KycStatus, Role};
use crate::entities::users;
use crate::error::{CoreError, CoreResult, FieldError};
use crate::list::{FieldKind, ListField, ListQuery, ListSpec, Page};
use crate::services::users::{MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, UserView, verify_off_thread};

/// The whitelist of `GET /admin/users`.
pub const USER_LIST: ListSpec<users::Column> = ListSpec {
    fields: &[
        ListField {
            name: "role",
            column: users::Column::Role,
            kind: FieldKind::Enum(Role::ALL),
        },
        ListField {
            name: "kycStatus",
            column: users::Column::KycStatus,
            kind: FieldKind::Enum(KycStatus::ALL),
        },
        ListField {
            name: "email",
            column: users::Column::Email,
            kind: FieldKind::Text,
        },
        ListField {
            name: "fullName",
            column: users::Column::FullName,
            kind: FieldKind::Text,
        },
        ListField {
            name: "isVerified",
            column: users::Column::IsVerified,
            kind: FieldKind::Boolean,
        },
        ListField {
            name: "createdAt",
            column: users::Column::CreatedAt,
            kind: FieldKind::Timestamp,
        },
        ListField {
            name: "kycSubmittedAt",
            column: users::Column::KycSubmittedAt,
            kind: FieldKind::Timestamp,
        },
    ],
    default_sort: &[(users::Column::CreatedAt, true)],
    tiebreak: users::Column::Id,
};

/// A user as admins see it: the `/me` shape plus account state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminUserView {
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
    /// True while an admin has disabled the account.
    pub is_disabled: bool,
    /// When it was disabled, if it is.
    pub disabled_at: Option<DateTime<Utc>>,
    /// When the e-KYC documents were last submitted.
    pub kyc_submitted_at: Option<DateTime<Utc>>,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

impl From<&users::Model> for AdminUserView {
    fn from(u: &users::Model) -> Self {
        let UserView {
            id,
            email,
            full_name,
            phone,
            role,
            is_verified,
            kyc_status,
            company_name,
        } = UserView::from(u);
        AdminUserView {
            id,
            email,
            full_name,
            phone,
            role,
            is_verified,
            kyc_status,
            company_name,
            is_disabled: u.disabled_at.is_some(),
            disabled_at: u.disabled_at,
            kyc_submitted_at: u.kyc_submitted_at,
            created_at: u.created_at,
        }
    }
}

/// `POST /me/password` input.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordInput {
    /// The password now.
    #[schema(min_length = 1, max_length = 256)]
    pub current_password: String,
    /// The new password, 8 to 256 characters, not the current one.
    #[schema(min_length = 8, max_length = 256)]
    pub new_password: String,
}

/// Checks a new password against the register rule: 8 to 256 characters.
pub fn check_new_password(new: &str) -> Vec<FieldError> {
    let length = new.chars().count();
    if length < MIN_PASSWORD_LEN {
        vec![FieldError::new(
            "newPassword",
            "too_short",
            format!("the password needs at least {MIN_PASSWORD_LEN} characters"),
        )]
    } else if length > MAX_PASSWORD_LEN {
        vec![FieldError::new(
            "newPassword",
            "too_long",
            "the password is too long",
        )]
    } else {
        Vec::new()
    }
}

/// A new password equal to the (verified) current one changes nothing: refused.
pub fn check_differs(current: &str, new: &str) -> CoreResult<()> {
    if current == new {
        return Err(CoreError::invalid_field(
            "newPassword",
            "same_as_current",
            "choose a password different from the current one",
        ));
    }
    Ok(())
}

/// An admin may disable anyone but themselves, so an instance keeps at least one admin who can
/// sign in (the one acting). A rule about the caller, not the request's content: 403.
pub fn check_disable(actor_id: Uuid, user_id: Uuid) -> CoreResult<()> {
    if actor_id == user_id {
        return Err(CoreError::forbidden(
            "cannot_disable_self",
            "you cannot disable your own account",
        ));
    }
    Ok(())
}

impl Services {
    /// `GET /admin/users`: users, newest first by default (the KYC queue with
    /// `filters[kycStatus][$eq]=PENDING`).
    pub async fn list_users(&self, query: &str) -> CoreResult<Page<AdminUserView>> {
        let q = ListQuery::parse(query, &USER_LIST)?;
        Ok(q.fetch(users::Entity::find(), &self.db)
            .await?
            .map(|u| AdminUserView::from(&u)))
    }

    /// `POST /me/password`: checks the current password, stores the new hash and revokes every
    /// token of the user (this request's too), in one transaction with its audit row.
    /// `user` is the caller as `require` read it, so its `token_version` is the caller's token's.
    pub async fn change_password(
        &self,
        actor: &ActorRef,
        user: &users::Model,
        input: ChangePasswordInput,
    ) -> CoreResult<()> {
        // The cheap checks first: no hashing work for a password that cannot be accepted.
        let errors = check_new_password(&input.new_password);
        if !errors.is_empty() {
            return Err(CoreError::Validation(errors));
        }
        let wrong = || {
            // 403, not 401: the session is fine, only this proof failed; a 401 would make
            // clients drop the session.
            CoreError::forbidden("invalid_credentials", "the current password is wrong")
        };
        // No stored password is that long: skip the hashing work.
        if input.current_password.chars().count() > MAX_PASSWORD_LEN {
            return Err(wrong());
        }
        if !verify_off_thread(input.current_password.clone(), user.password_hash.clone()).await? {
            return Err(wrong());
        }
        // Only now is `currentPassword` known to be the current password.
        check_differs(&input.current_password, &input.new_password)?;
        let hash = crate::services::users::hash_off_thread(input.new_password).await?;
        let now = self.clock.now();
        let version = user.token_version + 1;
        let txn = begin_write(&self.db).await?;
        let res = users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(hash))
            .col_expr(
                users::Column::TokenVersion,
                Expr::col(users::Column::TokenVersion).add(1),
            )
            .col_expr(users::Column::TokensChangedAt, Expr::value(now))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(user.id))
            .filter(users::Column::TokenVersion.eq(user.token_version))
            .filter(users::Column::DisabledAt.is_null())
            .exec(&txn)
            .await?;
        if res.rows_affected != 1 {
            // A concurrent password change or a disable revoked this token first.
            return Err(CoreError::Unauthorized {
                code: "unauthorized",
                message: "this token was revoked meanwhile; sign in again".into(),
            });
        }
        audit::record(
            &txn,
            self.clock.as_ref(),
            actor,
            AuditEntry {
                action: "user.password_changed",
                entity_type: "user",
                entity_id: user.id,
                old_values: Some(serde_json::json!({"tokenVersion": user.token_version})),
                new_values: Some(serde_json::json!({"tokenVersion": version})),
            },
        )
        .await?;
        txn.commit().await?;
        self.publish_revocation(user.id, version).await;
        Ok(())
    }

    /// `POST /admin/users/{id}/disable`: disables the account and revokes its tokens, with an
    /// audit row. Disabling a disabled account changes nothing.
    pub async fn disable_user(
        &self,
        actor: &ActorRef,
        admin_id: Uuid,
        user_id: Uuid,
    ) -> CoreResult<AdminUserView> {
        check_disable(admin_id, user_id)?;
        let now = self.clock.now();
        let txn = begin_write(&self.db).await?;
        let user = users::Entity::find_by_id(user_id)
            .one(&txn)
            .await?
            .ok_or(CoreError::NotFound("user"))?;
        if user.disabled_at.is_some() {
            return Ok(AdminUserView::from(&user));
        }
        let updated = users::Entity::update_many()
            .col_expr(users::Column::DisabledAt, Expr::value(now))
            .col_expr(
                users::Column::TokenVersion,
                Expr::col(users::Column::TokenVersion).add(1),
            )
            .col_expr(users::Column::TokensChangedAt, Expr::value(now))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(user_id))
            .filter(users::Column::DisabledAt.is_null())
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .next();
        let Some(updated) = updated else {
            // Disabled by a concurrent request (PostgreSQL): the same outcome.
            drop(txn);
            return Ok(AdminUserView::from(&self.user(user_id).await?));
        };
        audit::record(
            &txn,
            self.clock.as_ref(),
            actor,
            AuditEntry {
                action: "user.disabled",
                entity_type: "user",
                entity_id: user_id,
                old_values: Some(serde_json::json!({
                    "isDisabled": false,
                    "tokenVersion": user.token_version,
                })),
                new_values: Some(serde_json::json!({
                    "isDisabled": true,
                    "tokenVersion": updated.token_version,
                })),
            },
        )
        .await?;
        txn.commit().await?;
        self.publish_revocation(user_id, updated.token_version)
            .await;
        Ok(AdminUserView::from(&updated))
    }

    /// `POST /admin/users/{id}/enable`: lets the user sign in again, with an audit row. Tokens
    /// revoked by the disable stay revoked (the version is not lowered). Enabling an enabled
    /// account changes nothing.
    pub async fn enable_user(&self, actor: &ActorRef, user_id: Uuid) -> CoreResult<AdminUserView> {
        let now = self.clock.now();
        let txn = begin_write(&self.db).await?;
        let user = users::Entity::find_by_id(user_id)
            .one(&txn)
            .await?
            .ok_or(CoreError::NotFound("user"))?;
        if user.disabled_at.is_none() {
            return Ok(AdminUserView::from(&user));
        }
        let updated = users::Entity::update_many()
            .col_expr(
                users::Column::DisabledAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(user_id))
            .filter(users::Column::DisabledAt.is_not_null())
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .next();
        let Some(updated) = updated else {
            drop(txn);
            return Ok(AdminUserView::from(&self.user(user_id).await?));
        };
        audit::record(
            &txn,
            self.clock.as_ref(),
            actor,
            AuditEntry {
                action: "user.enabled",
                entity_type: "user",
                entity_id: user_id,
                old_values: Some(serde_json::json!({"isDisabled": true})),
                new_values: Some(serde_json::json!({"isDisabled": false})),
            },
        )
        .await?;
        txn.commit().await?;
        Ok(AdminUserView::from(&updated))
    }

    /// Tells every instance's hub that the user's tokens below `min_version` are revoked. The
    /// bus is the fast path only (the hubs' catch-up reads `users` too): failures are logged.
    async fn publish_revocation(&self, user_id: Uuid, min_version: i64) {
        let revocation = Revocation {
            user_id,
            min_version,
        };
        if let Err(e) = self.bus.publish_revocation(&revocation).await {
            tracing::warn!(user = %user_id, error = %e,
                "publishing a token revocation failed; instances will catch up from the database");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.code.as_str()).collect()
    }

    #[test]
    fn new_passwords_follow_the_register_rule_and_differ_from_the_current_one() {
        assert!(check_new_password("another-one").is_empty());
        assert_eq!(codes(&check_new_password("short")), ["too_short"]);
        // Eight characters, counted as characters, not bytes.
        assert!(check_new_password("éééééééé").is_empty());
        assert_eq!(codes(&check_new_password("ééééééé")), ["too_short"]);
        assert_eq!(
            codes(&check_new_password(&"y".repeat(MAX_PASSWORD_LEN + 1))),
            ["too_long"]
        );
        assert!(check_new_password(&"y".repeat(MAX_PASSWORD_LEN)).is_empty());
        assert!(
            check_new_password("short")
                .iter()
                .all(|e| e.field == "newPassword")
        );
        match check_differs("password123", "password123") {
            Err(CoreError::Validation(errors)) => assert_eq!(codes(&errors), ["same_as_current"]),
            other => panic!("expected a validation error, got {other:?}"),
        }
        assert!(check_differs("password123", "password124").is_ok());
    }

    #[test]
    fn an_admin_cannot_disable_themselves() {
        let me = Uuid::now_v7();
        match check_disable(me, me) {
            Err(CoreError::Forbidden { code, .. }) => assert_eq!(code, "cannot_disable_self"),
            other => panic!("expected a 403, got {other:?}"),
        }
        assert!(check_disable(me, Uuid::now_v7()).is_ok());
    }

    #[test]
    fn the_admin_view_carries_the_account_state() {
        let now = Utc::now();
        let user = users::Model {
            id: Uuid::now_v7(),
            email: "a@b.co".into(),
            password_hash: "secret-hash".into(),
            full_name: "A".into(),
            phone: None,
            role: "MARKETING".into(),
            is_verified: false,
            kyc_status: "PENDING".into(),
            kyc_reason: None,
            company_name: Some("PT Maju".into()),
            kyc_id_card_path: None,
            kyc_selfie_path: None,
            kyc_office_id_card_path: None,
            kyc_submitted_at: Some(now),
            kyc_decided_at: None,
            kyc_decided_by: None,
            created_at: now,
            updated_at: now,
            token_version: 3,
            disabled_at: Some(now),
            tokens_changed_at: Some(now),
        };
        let view = AdminUserView::from(&user);
        assert!(view.is_disabled);
        assert_eq!(view.kyc_status, KycStatus::Pending);
        assert_eq!(view.kyc_submitted_at, Some(now));
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["isDisabled"], true);
        assert_eq!(json["companyName"], "PT Maju");
        assert!(json.get("passwordHash").is_none() && json.get("tokenVersion").is_none());
    }
}
