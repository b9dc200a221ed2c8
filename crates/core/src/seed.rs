//! The demo seed: a project of 120 units drawn the Illustrator way, three users, a few sold and
//! booked houses. It runs only on an empty database, and prints fresh credentials once.

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde::Deserialize;
use uuid::Uuid;

use crate::Services;
use crate::audit::ActorRef;
use crate::db::begin_write;
use crate::domain::{Role, UnitStatus};
use crate::entities::{projects, units, users};
use crate::error::{CoreError, CoreResult};
use crate::services::projects::NewProject;
use crate::services::units::{NewUnit, NewUnits, UnitBatch};
use crate::unit_changes::{UnitChange, record_unit_change, set_unit_status};

/// The demo project description, embedded so the binary seeds from any working directory.
pub const DEMO_PROJECT_JSON: &str = include_str!("../../../fixtures/demo/project.json");
/// The demo siteplan (Illustrator "Save As" style ids).
pub const DEMO_SITEPLAN_SVG: &str =
    include_str!("../../../fixtures/siteplans/demo-illustrator.svg");

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DemoFile {
    project: NewProject,
    initial_statuses: std::collections::BTreeMap<String, UnitStatus>,
    units: Vec<NewUnit>,
}

/// One seeded account.
#[derive(Clone, Debug)]
pub struct SeededAccount {
    /// Role.
    pub role: Role,
    /// Email.
    pub email: String,
    /// The generated password (shown once).
    pub password: String,
}

/// What the demo seed created.
#[derive(Clone, Debug)]
pub struct DemoSeed {
    /// The demo project.
    pub project_id: Uuid,
    /// The accounts and their passwords.
    pub accounts: Vec<SeededAccount>,
}

fn random_password() -> CoreResult<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| CoreError::Internal(format!("no randomness: {e}")))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

impl Services {
    /// True when the database has no users and no projects.
    pub async fn is_empty(&self) -> CoreResult<bool> {
        Ok(users::Entity::find().count(&self.db).await? == 0
            && projects::Entity::find().count(&self.db).await? == 0)
    }

    /// Seeds the demo project and accounts (call on an empty database).
    pub async fn seed_demo(&self) -> CoreResult<DemoSeed> {
        let demo: DemoFile = serde_json::from_str(DEMO_PROJECT_JSON).map_err(|e| {
            CoreError::Internal(format!("fixtures/demo/project.json is invalid: {e}"))
        })?;
        let mut accounts = Vec::new();
        let mut admin_id = None;
        for (role, email, name) in [
            (Role::Admin, "admin@kavling.local", "Admin Kavling"),
            (Role::Marketing, "marketing@kavling.local", "Sari Marketing"),
            (Role::Buyer, "buyer@kavling.local", "Budi Pembeli"),
        ] {
            let password = random_password()?;
            let user = self
                .create_user_with_role(email, &password, name, role, role != Role::Buyer)
                .await?;
            if role == Role::Admin {
                admin_id = Some(user.id);
            }
            accounts.push(SeededAccount {
                role,
                email: email.to_owned(),
                password,
            });
        }
        let actor = ActorRef {
            user_id: admin_id,
            request_id: Some("seed".into()),
        };
        let project = self.create_project(&actor, demo.project).await?;
        self.create_units(&actor, project.id, NewUnits::Many(UnitBatch(demo.units)))
            .await?;
        self.replace_siteplan(&actor, project.id, DEMO_SITEPLAN_SVG.as_bytes())
            .await?;

        // A few houses already sold or booked, each through the normal event path.
        let txn = begin_write(&self.db).await?;
        let now = self.clock.now();
        for (block, to) in demo.initial_statuses {
            let unit = units::Entity::find()
                .filter(units::Column::ProjectId.eq(project.id))
                .filter(units::Column::BlockNumber.eq(block.as_str()))
                .one(&txn)
                .await?
                .ok_or(CoreError::NotFound("demo unit"))?;
            if set_unit_status(&txn, now, unit.id, UnitStatus::Available, to).await? {
                record_unit_change(
                    &txn,
                    self.clock.as_ref(),
                    &actor,
                    UnitChange {
                        project_id: project.id,
                        unit_id: unit.id,
                        block_number: unit.block_number,
                        from: UnitStatus::Available,
                        to,
                        booking: None,
                    },
                )
                .await?;
            }
        }
        txn.commit().await?;
        Ok(DemoSeed {
            project_id: project.id,
            accounts,
        })
    }
}
