//! Configuration from environment variables (documented in the README), with safe defaults so
//! `cargo run --release` works on a fresh machine.

use std::path::{Path, PathBuf};

use base64::Engine;

/// Default bind address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default database: a SQLite file in `data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/kavling.db?mode=rwc";
/// Default upload directory.
pub const DEFAULT_STORAGE_DIR: &str = "data/uploads";
/// Default siteplan size cap (20 MiB).
pub const DEFAULT_MAX_SITEPLAN_BYTES: usize = 20 * 1024 * 1024;

/// Default burst of login/register requests per client IP.
pub const DEFAULT_AUTH_RATE_BURST: u32 = 5;
/// Chat messages a user may send per minute, sustained (`KAVLING_CHAT_RATE_PER_MINUTE`).
pub const DEFAULT_CHAT_RATE_PER_MINUTE: u32 = 60;
/// Chat messages a user may send at once (`KAVLING_CHAT_RATE_BURST`).
pub const DEFAULT_CHAT_RATE_BURST: u32 = 20;
/// Default sustained login/register requests per second per client IP.
pub const DEFAULT_AUTH_RATE_PER_SECOND: u64 = 1;
/// Most HTTP worker threads `KAVLING_WORKERS` may ask for.
pub const MAX_WORKERS: u64 = 1024;
/// Most database connections per instance `KAVLING_DB_POOL_SIZE` may ask for.
pub const MAX_DB_POOL_SIZE: u64 = 10_000;

/// A configuration problem, reported as one line naming the variable (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable has a value we cannot use.
    #[error("{var}: {message}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A secret file could not be read or written.
    #[error("{var}: cannot use the generated secret in {path}: {message}")]
    SecretFile {
        /// The variable the secret stands in for.
        var: &'static str,
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The server's configuration.
#[derive(Clone)]
pub struct Config {
    /// `KAVLING_BIND`.
    pub bind: String,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `REDIS_URL` (None: in-process bus).
    pub redis_url: Option<String>,
    /// `KAVLING_JWT_SECRET` (or generated).
    pub jwt_secret: Vec<u8>,
    /// `KAVLING_PII_KEY` (or generated).
    pub pii_key: [u8; 32],
    /// `KAVLING_STORAGE_DIR`.
    pub storage_dir: PathBuf,
    /// `KAVLING_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `KAVLING_MAX_SITEPLAN_BYTES`.
    pub max_siteplan_bytes: usize,
    /// `KAVLING_WORKERS` (default: number of CPUs).
    pub workers: Option<usize>,
    /// `KAVLING_DB_POOL_SIZE`: database connections per instance (default: 32 for PostgreSQL,
    /// 8 for SQLite).
    pub db_pool_size: Option<u32>,
    /// `KAVLING_CORS_ORIGINS`: comma-separated allowed origins.
    pub cors_origins: Vec<String>,
    /// Seed the demo project when the database is empty (`KAVLING_SEED_DEMO`, default true).
    pub seed_demo: bool,
    /// `KAVLING_AUTH_RATE_PER_SECOND`: sustained login/register requests per second per IP.
    pub auth_rate_per_second: u64,
    /// `KAVLING_AUTH_RATE_BURST`: login/register burst per IP.
    pub auth_rate_burst: u32,
    /// `KAVLING_KPR_RATE_BPS`: annual KPR rate for the lead score, in basis points (900 = 9%).
    pub kpr_rate_bps: u32,
    /// `KAVLING_CHAT_RATE_PER_MINUTE` and `KAVLING_CHAT_RATE_BURST`: chat messages per user,
    /// decided in the database so the limit holds across instances.
    pub chat_rate: kavling_core::services::ratelimit::RateLimit,
    /// Messages about generated secrets, logged once logging is up.
    pub warnings: Vec<String>,
    /// Serve `/ws-echo`, a WebSocket echo through the `/ws` session loop for protocol
    /// compliance runs (`KAVLING_WS_ECHO=1`, default off).
    pub ws_echo: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field(
                "database_url",
                &kavling_core::db::redact(&self.database_url),
            )
            .field(
                "redis_url",
                &self.redis_url.as_deref().map(kavling_core::db::redact),
            )
            .field("storage_dir", &self.storage_dir)
            .finish_non_exhaustive()
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The directory that holds the SQLite file and generated secrets: `KAVLING_DATA_DIR`, else the
/// SQLite file's directory, else `data`.
pub fn data_dir(database_url: &str) -> PathBuf {
    if let Some(d) = var("KAVLING_DATA_DIR") {
        return PathBuf::from(d);
    }
    if let Some(rest) = database_url.strip_prefix("sqlite:") {
        let path = rest
            .trim_start_matches("//")
            .split('?')
            .next()
            .unwrap_or("");
        if let Some(parent) = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            return parent.to_path_buf();
        }
    }
    PathBuf::from("data")
}

impl Config {
    /// What the business services need from this configuration.
    pub fn service_settings(&self) -> kavling_core::ServiceSettings {
        kavling_core::ServiceSettings {
            jwt_secret: self.jwt_secret.clone(),
            pii_key: self.pii_key,
            max_siteplan_bytes: self.max_siteplan_bytes,
            storage_dir: self.storage_dir.clone(),
            kpr_rate_bps: self.kpr_rate_bps,
            chat_rate: self.chat_rate,
        }
    }

    /// Reads the configuration from the environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        let bind = var("KAVLING_BIND").unwrap_or_else(|| DEFAULT_BIND.to_owned());
        if bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Invalid {
                var: "KAVLING_BIND",
                message: format!("`{bind}` is not a host:port address like 127.0.0.1:8080"),
            });
        }
        let database_url = var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        validate_database_url(&database_url)?;
        let redis_url = var("REDIS_URL");
        if let Some(r) = &redis_url
            && !(r.starts_with("redis://")
                || r.starts_with("rediss://")
                || r.starts_with("unix://"))
        {
            return Err(ConfigError::Invalid {
                var: "REDIS_URL",
                message: "must start with redis://, rediss:// or unix://".into(),
            });
        }
        let data = data_dir(&database_url);
        let mut warnings = Vec::new();
        let jwt_secret = match var("KAVLING_JWT_SECRET") {
            Some(s) if s.len() >= 32 => s.into_bytes(),
            Some(_) => {
                return Err(ConfigError::Invalid {
                    var: "KAVLING_JWT_SECRET",
                    message: "must be at least 32 characters".into(),
                });
            }
            None => {
                let bytes = load_or_generate(
                    &data.join("jwt_secret"),
                    "KAVLING_JWT_SECRET",
                    &mut warnings,
                )?;
                bytes.to_vec()
            }
        };
        let pii_key = match var("KAVLING_PII_KEY") {
            Some(s) => parse_key(&s).ok_or(ConfigError::Invalid {
                var: "KAVLING_PII_KEY",
                message: "must be 32 bytes as 64 hex characters or base64".into(),
            })?,
            None => load_or_generate(&data.join("pii_key"), "KAVLING_PII_KEY", &mut warnings)?,
        };
        let log_format = match var("KAVLING_LOG_FORMAT").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "KAVLING_LOG_FORMAT",
                    message: format!("`{other}` is not json or pretty"),
                });
            }
        };
        let max_siteplan_bytes = match var("KAVLING_MAX_SITEPLAN_BYTES") {
            None => DEFAULT_MAX_SITEPLAN_BYTES,
            Some(s) => s
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(ConfigError::Invalid {
                    var: "KAVLING_MAX_SITEPLAN_BYTES",
                    message: "must be a positive number of bytes".into(),
                })?,
        };
        let workers = optional_positive("KAVLING_WORKERS", MAX_WORKERS)?
            .and_then(|n| usize::try_from(n).ok());
        let db_pool_size = optional_positive("KAVLING_DB_POOL_SIZE", MAX_DB_POOL_SIZE)?
            .and_then(|n| u32::try_from(n).ok());
        let cors_origins: Vec<String> = var("KAVLING_CORS_ORIGINS")
            .map(|s| {
                s.split(',')
                    .map(|o| o.trim().to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(bad) = cors_origins.iter().find(|o: &&String| {
            !(o.starts_with("http://") || o.starts_with("https://"))
                || o.parse::<actix_web::http::Uri>().is_err()
        }) {
            return Err(ConfigError::Invalid {
                var: "KAVLING_CORS_ORIGINS",
                message: format!("`{bad}` is not an origin like https://admin.example.com"),
            });
        }
        let seed_demo = !matches!(
            var("KAVLING_SEED_DEMO").as_deref(),
            Some("false" | "0" | "no")
        );
        let ws_echo = matches!(
            var("KAVLING_WS_ECHO").as_deref(),
            Some("1" | "true" | "yes")
        );
        let auth_rate_per_second = positive(
            "KAVLING_AUTH_RATE_PER_SECOND",
            DEFAULT_AUTH_RATE_PER_SECOND,
            1_000_000,
        )?;
        let auth_rate_burst = u32::try_from(positive(
            "KAVLING_AUTH_RATE_BURST",
            u64::from(DEFAULT_AUTH_RATE_BURST),
            1_000_000,
        )?)
        .unwrap_or(DEFAULT_AUTH_RATE_BURST);
        let kpr_rate_bps = match var("KAVLING_KPR_RATE_BPS") {
            None => kavling_core::services::leads::DEFAULT_KPR_RATE_BPS,
            Some(s) => s
                .parse()
                .ok()
                .filter(|n| *n <= kavling_core::services::leads::MAX_KPR_RATE_BPS)
                .ok_or(ConfigError::Invalid {
                    var: "KAVLING_KPR_RATE_BPS",
                    message: "must be basis points from 0 to 10000 (900 = 9% a year)".into(),
                })?,
        };
        let chat_rate = kavling_core::services::ratelimit::RateLimit {
            per_minute: u32::try_from(positive(
                "KAVLING_CHAT_RATE_PER_MINUTE",
                u64::from(DEFAULT_CHAT_RATE_PER_MINUTE),
                1_000_000,
            )?)
            .unwrap_or(DEFAULT_CHAT_RATE_PER_MINUTE),
            burst: u32::try_from(positive(
                "KAVLING_CHAT_RATE_BURST",
                u64::from(DEFAULT_CHAT_RATE_BURST),
                1_000_000,
            )?)
            .unwrap_or(DEFAULT_CHAT_RATE_BURST),
        };
        Ok(Config {
            bind,
            database_url,
            redis_url,
            jwt_secret,
            pii_key,
            storage_dir: var("KAVLING_STORAGE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STORAGE_DIR)),
            log_format,
            max_siteplan_bytes,
            workers,
            db_pool_size,
            cors_origins,
            seed_demo,
            auth_rate_per_second,
            auth_rate_burst,
            kpr_rate_bps,
            chat_rate,
            warnings,
            ws_echo,
        })
    }
}

/// Reads a whole number from 1 to `max`, or the default when unset.
fn positive(name: &'static str, default: u64, max: u64) -> Result<u64, ConfigError> {
    Ok(optional_positive(name, max)?.unwrap_or(default))
}

/// Reads a whole number from 1 to `max`, or None when unset.
fn optional_positive(name: &'static str, max: u64) -> Result<Option<u64>, ConfigError> {
    var(name)
        .map(|s| {
            s.parse()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or(ConfigError::Invalid {
                    var: name,
                    message: format!("must be a whole number from 1 to {max}"),
                })
        })
        .transpose()
}

/// Checks that a database URL is one we can open, naming the variable on failure.
pub fn validate_database_url(url: &str) -> Result<(), ConfigError> {
    let bad = |message: &str| ConfigError::Invalid {
        var: "DATABASE_URL",
        message: message.to_owned(),
    };
    if let Some(rest) = url.strip_prefix("sqlite:") {
        if rest
            .trim_start_matches("//")
            .split('?')
            .next()
            .unwrap_or("")
            .is_empty()
        {
            return Err(bad(
                "a sqlite URL needs a file path, e.g. sqlite://data/kavling.db?mode=rwc",
            ));
        }
        return Ok(());
    }
    if let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    {
        let host = rest.rsplit('@').next().unwrap_or("");
        if host.is_empty() || host.starts_with('/') {
            return Err(bad(
                "a postgres URL needs a host, e.g. postgres://postgres@127.0.0.1:5432/kavling",
            ));
        }
        return Ok(());
    }
    Err(bad("must start with sqlite:// or postgres://"))
}

fn parse_key(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    let bytes = if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else {
        base64::engine::general_purpose::STANDARD.decode(s).ok()?
    };
    bytes.try_into().ok()
}

/// Reads a 32-byte secret from `path`, or generates one there (owner-only permissions).
fn load_or_generate(
    path: &Path,
    var: &'static str,
    warnings: &mut Vec<String>,
) -> Result<[u8; 32], ConfigError> {
    let err = |message: String| ConfigError::SecretFile {
        var,
        path: path.display().to_string(),
        message,
    };
    if let Ok(text) = std::fs::read_to_string(path) {
        return parse_key(&text)
            .ok_or_else(|| err("the file does not hold a 32-byte hex key".into()));
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| err(e.to_string()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    write_private(path, &hex).map_err(|e| err(e.to_string()))?;
    warnings.push(format!(
        "{var} is not set: generated one in {} (owner-only). Instances that share a database must share it: set {var}.",
        path.display()
    ));
    Ok(key)
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert!(validate_database_url("sqlite://data/k.db?mode=rwc").is_ok());
        assert!(validate_database_url("postgres://postgres@127.0.0.1:5432/k").is_ok());
        for bad in ["mysql://x", "nonsense", "sqlite://", "postgres://", ""] {
            assert!(validate_database_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_and_secret_files() {
        assert!(parse_key(&"ab".repeat(32)).is_some());
        assert!(parse_key("short").is_none());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let mut w = Vec::new();
        let a = load_or_generate(&p, "KAVLING_PII_KEY", &mut w).unwrap();
        assert_eq!(w.len(), 1);
        let b = load_or_generate(&p, "KAVLING_PII_KEY", &mut w).unwrap();
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            data_dir("sqlite://data/kavling.db?mode=rwc"),
            PathBuf::from("data")
        );
    }
}
