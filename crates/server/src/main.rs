//! The `kavling` binary: `serve` (default), `migrate`, `seed --demo`, `admin create`.

use clap::{Parser, Subcommand};
use kavling_server::config::Config;
use kavling_server::startup::{Application, BuildOptions};
use kavling_server::telemetry;

/// Only with `--features mimalloc`, to measure it against glibc's malloc (issue #20).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "kavling",
    version,
    about = "Real-time siteplan and unit availability for housing developers"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API, WebSocket and pages (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Seed data into an empty database.
    Seed {
        /// Seed the demo project, its units and three accounts.
        #[arg(long)]
        demo: bool,
        /// Benchmark: create this many BUYER users watching `--unit`, printing `<id> <token>`
        /// lines to `--tokens-out`.
        #[arg(long, requires_all = ["unit", "tokens_out"])]
        watchers: Option<usize>,
        /// The unit the seeded watchers watch.
        #[arg(long)]
        unit: Option<uuid::Uuid>,
        /// Where the watchers' ids and tokens go.
        #[arg(long)]
        tokens_out: Option<std::path::PathBuf>,
    },
    /// Manage administrators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an administrator account.
    Create {
        /// Email address.
        #[arg(long)]
        email: String,
        /// Password (at least 8 characters).
        #[arg(long)]
        password: String,
        /// Display name.
        #[arg(long, default_value = "Administrator")]
        name: String,
    },
}

/// Prints one line and exits with code 2 (configuration or environment problem).
fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("kavling: {message}");
    std::process::exit(2)
}

fn print_seed(seed: &kavling_core::seed::DemoSeed, bind: &str) {
    println!(
        "Seeded the demo project {} (shown once; keep these):",
        seed.project_id
    );
    for a in &seed.accounts {
        println!(
            "  {:<9} {:<26} password: {}",
            a.role.as_str(),
            a.email,
            a.password
        );
    }
    println!("  live page: http://{bind}/projects/{}", seed.project_id);
}

#[actix_web::main]
async fn main() {
    let cli = Cli::parse();
    let config = Config::from_env().unwrap_or_else(|e| fail(e));
    telemetry::init(config.log_format);
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(&config, BuildOptions::default())
                .await
                .unwrap_or_else(|e| fail(e));
            if let Some(seed) = &app.seeded {
                print_seed(seed, &config.bind);
            }
            tracing::info!(bind = %config.bind, "Kavling is listening");
            if let Err(e) = app.run_until_stopped().await {
                fail(format!("server stopped: {e}"));
            }
            tracing::info!("shut down cleanly");
        }
        Command::Migrate => {
            let db = kavling_core::db::connect(&config.database_url, Some(1))
                .await
                .unwrap_or_else(|e| fail(e));
            kavling_core::db::migrate(&db)
                .await
                .unwrap_or_else(|e| fail(e));
            println!("migrations applied");
        }
        Command::Seed {
            watchers: Some(n),
            unit: Some(unit),
            tokens_out: Some(out),
            ..
        } => {
            let services = offline_services(&config).await;
            let seeded = services
                .seed_watchers(unit, n, "bench-watcher-password")
                .await
                .unwrap_or_else(|e| fail(e));
            let lines: String = seeded
                .iter()
                .map(|(id, token)| format!("{id} {token}\n"))
                .collect();
            std::fs::write(&out, lines).unwrap_or_else(|e| fail(e));
            println!("seeded {n} watchers of unit {unit}: {}", out.display());
        }
        Command::Seed { demo, .. } => {
            if !demo {
                fail("nothing to seed: pass --demo");
            }
            let services = offline_services(&config).await;
            match services.is_empty().await {
                Ok(true) => {}
                Ok(false) => {
                    fail("the database is not empty; the demo seed only runs on an empty database")
                }
                Err(e) => fail(e),
            }
            let seed = services.seed_demo().await.unwrap_or_else(|e| fail(e));
            print_seed(&seed, &config.bind);
        }
        Command::Admin {
            command:
                AdminCommand::Create {
                    email,
                    password,
                    name,
                },
        } => {
            let services = offline_services(&config).await;
            match services.create_admin(&email, &password, &name).await {
                Ok(user) => println!("created administrator {} ({})", user.email, user.id),
                Err(e) => fail(e),
            }
        }
    }
}

/// Services for one-shot commands: migrated database, no server, events go nowhere but the database.
async fn offline_services(config: &Config) -> kavling_core::Services {
    let db = kavling_core::db::connect(&config.database_url, Some(2))
        .await
        .unwrap_or_else(|e| fail(e));
    kavling_core::db::migrate(&db)
        .await
        .unwrap_or_else(|e| fail(e));
    let hub = kavling_realtime::Hub::new(
        std::sync::Arc::new(kavling_core::event_store::DbEventStore::new(db.clone())),
        kavling_realtime::HubConfig::default(),
    );
    kavling_core::Services::new(
        db,
        std::sync::Arc::new(kavling_realtime::InProcessBus::new(hub)),
        std::sync::Arc::new(kavling_core::clock::SystemClock),
        &config.service_settings(),
    )
    .unwrap_or_else(|e| fail(e))
}
