//! Rate limits that hold across instances: one row per key in `rate_limits` with its GCRA
//! "theoretical arrival time", moved by a single conditional UPDATE. Whichever instance serves a
//! request, the database decides, so N instances do not give a user N times the allowance.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{CaseStatement, Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter, Set};

use crate::entities::rate_limits;
use crate::error::{CoreError, CoreResult};

/// A sustained rate with a burst, e.g. 60 a minute in bursts of 20.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per minute, sustained.
    pub per_minute: u32,
    /// Requests allowed at once after a quiet period.
    pub burst: u32,
}

impl RateLimit {
    /// Microseconds between two requests at the sustained rate (the GCRA emission interval).
    fn interval_micros(self) -> i64 {
        60_000_000 / i64::from(std::cmp::max(self.per_minute, 1))
    }

    /// How far ahead of now the arrival time may run (the GCRA tolerance).
    fn tolerance_micros(self) -> i64 {
        self.interval_micros() * i64::from(std::cmp::max(self.burst, 1) - 1)
    }

    /// Spends one request of `key` at `now`, in the caller's transaction (rolled back with it),
    /// or answers `rate_limited` with the seconds until the next one is allowed.
    pub async fn spend<C: ConnectionTrait>(
        self,
        conn: &C,
        key: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        let now_us = now.timestamp_micros();
        let (t, tau) = (self.interval_micros(), self.tolerance_micros());
        // Two rounds cover a row created by a concurrent first request between our two statements.
        for _ in 0..2 {
            // tat := max(tat, now) + T, only while tat <= now + tau (else the request is early).
            let later = CaseStatement::new()
                .case(
                    Expr::col(rate_limits::Column::Tat).lt(now_us),
                    Expr::val(now_us),
                )
                .finally(Expr::col(rate_limits::Column::Tat));
            let spent = rate_limits::Entity::update_many()
                .col_expr(rate_limits::Column::Tat, Expr::expr(later).add(t))
                .filter(rate_limits::Column::Key.eq(key))
                .filter(rate_limits::Column::Tat.lte(now_us + tau))
                .exec(conn)
                .await?;
            if spent.rows_affected == 1 {
                return Ok(());
            }
            let row = rate_limits::Entity::find_by_id(key.to_owned())
                .one(conn)
                .await?;
            match row {
                Some(r) if r.tat > now_us + tau => {
                    let wait = r.tat - now_us - tau;
                    let secs =
                        std::cmp::max(u64::try_from((wait + 999_999) / 1_000_000).unwrap_or(1), 1);
                    return Err(CoreError::RateLimited {
                        message: format!("too many messages; retry in {secs} s"),
                        retry_after_secs: secs,
                    });
                }
                Some(_) => continue,
                None => {
                    let inserted = rate_limits::Entity::insert(rate_limits::ActiveModel {
                        key: Set(key.to_owned()),
                        tat: Set(now_us + t),
                    })
                    .on_conflict(
                        OnConflict::column(rate_limits::Column::Key)
                            .do_nothing()
                            .to_owned(),
                    )
                    .exec_without_returning(conn)
                    .await?;
                    if inserted == 1 {
                        return Ok(());
                    }
                }
            }
        }
        Err(CoreError::Internal(
            "the rate-limit row kept changing under us".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_n_fits_in_the_tolerance() {
        let limit = RateLimit {
            per_minute: 60,
            burst: 20,
        };
        assert_eq!(limit.interval_micros(), 1_000_000);
        assert_eq!(limit.tolerance_micros(), 19_000_000);
        let one = RateLimit {
            per_minute: 0,
            burst: 0,
        };
        assert_eq!(one.tolerance_micros(), 0);
    }
}
