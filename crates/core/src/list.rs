//! The list conventions, implemented once for every list endpoint: Strapi-style
//! `filters[field][$op]=value`, `sort=field:asc,other:desc`, `pagination[page]`/`pagination[pageSize]`,
//! each field checked against a per-resource whitelist. Anything unknown is `invalid_query`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Expr, Func, LikeExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, Order, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Select, Value,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{CoreError, CoreResult};

/// Default page size when the client gives none.
pub const DEFAULT_PAGE_SIZE: u64 = 25;
/// Largest page size a client may ask for.
pub const MAX_PAGE_SIZE: u64 = 100;

/// What type a list field holds, which decides how filter values are parsed and which operators apply.
#[derive(Clone, Copy, Debug)]
pub enum FieldKind {
    /// A UUID (`$eq $ne $in`).
    Uuid,
    /// Free text (every operator; `$containsi` is case-insensitive substring).
    Text,
    /// A whole number (`$eq $ne $in $gt $gte $lt $lte`).
    Integer,
    /// true/false (`$eq $ne`).
    Boolean,
    /// An RFC 3339 timestamp or a `YYYY-MM-DD` date (`$eq $ne $gt $gte $lt $lte`).
    Timestamp,
    /// One of a fixed vocabulary (`$eq $ne $in`).
    Enum(&'static [&'static str]),
    /// A calendar date `YYYY-MM-DD` (`$eq $ne $gt $gte $lt $lte`).
    Date,
}

/// One whitelisted field of a resource.
#[derive(Clone, Copy, Debug)]
pub struct ListField<C: 'static> {
    /// The camelCase name clients use.
    pub name: &'static str,
    /// The database column.
    pub column: C,
    /// Its type.
    pub kind: FieldKind,
}

/// The whitelist and defaults of one list endpoint.
#[derive(Clone, Copy, Debug)]
pub struct ListSpec<C: 'static> {
    /// Fields that may be filtered and sorted on.
    pub fields: &'static [ListField<C>],
    /// Sort applied when the client gives none: `(column, descending)`.
    pub default_sort: &'static [(C, bool)],
    /// A unique column appended to every sort so pages are stable.
    pub tiebreak: C,
}

/// A filter operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// equals
    Eq,
    /// not equals
    Ne,
    /// one of
    In,
    /// case-insensitive substring
    ContainsI,
    /// greater than
    Gt,
    /// greater than or equal
    Gte,
    /// less than
    Lt,
    /// less than or equal
    Lte,
    /// `true`: the field is null; `false`: it is not
    Null,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "$eq" => Op::Eq,
            "$ne" => Op::Ne,
            "$in" => Op::In,
            "$containsi" => Op::ContainsI,
            "$gt" => Op::Gt,
            "$gte" => Op::Gte,
            "$lt" => Op::Lt,
            "$lte" => Op::Lte,
            "$null" => Op::Null,
            _ => return None,
        })
    }

    fn allowed_for(self, kind: FieldKind) -> bool {
        if self == Op::Null {
            return true;
        }
        match kind {
            FieldKind::Text => true,
            FieldKind::Integer => self != Op::ContainsI,
            FieldKind::Timestamp | FieldKind::Date => !matches!(self, Op::ContainsI | Op::In),
            FieldKind::Uuid | FieldKind::Enum(_) => matches!(self, Op::Eq | Op::Ne | Op::In),
            FieldKind::Boolean => matches!(self, Op::Eq | Op::Ne),
        }
    }
}

/// One parsed, typed filter.
#[derive(Clone, Debug)]
pub struct Filter<C> {
    column: C,
    op: Op,
    values: Vec<Value>,
}

/// A parsed list request, ready to apply to a query.
#[derive(Clone, Debug)]
pub struct ListQuery<C> {
    filters: Vec<Filter<C>>,
    sort: Vec<(C, bool)>,
    /// Page number, from 1.
    pub page: u64,
    /// Rows per page.
    pub page_size: u64,
}

/// A filter value as it arrives: one string, or a list (`[0]=a&[1]=b` or repeated `[]`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawValue {
    One(String),
    Many(Vec<String>),
    Indexed(BTreeMap<String, String>),
}

impl RawValue {
    fn into_vec(self) -> CoreResult<Vec<String>> {
        match self {
            RawValue::One(s) => Ok(vec![s]),
            RawValue::Many(v) => Ok(v),
            RawValue::Indexed(m) => {
                let mut items = Vec::with_capacity(m.len());
                for (k, v) in m {
                    let idx: usize = k.parse().map_err(|_| {
                        CoreError::InvalidQuery(format!("`[{k}]` is not an array index"))
                    })?;
                    items.push((idx, v));
                }
                items.sort_by_key(|(i, _)| *i);
                Ok(items.into_iter().map(|(_, v)| v).collect())
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPagination {
    page: Option<String>,
    #[serde(rename = "pageSize")]
    page_size: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListQuery {
    #[serde(default)]
    filters: BTreeMap<String, BTreeMap<String, RawValue>>,
    sort: Option<RawValue>,
    #[serde(default)]
    pagination: RawPagination,
    /// Strapi's relation population: accepted and ignored (responses embed what they need).
    #[allow(dead_code)]
    populate: Option<RawValue>,
}

impl<C: ColumnTrait + Copy> ListQuery<C> {
    /// Parses a raw query string against a resource's whitelist.
    pub fn parse(query: &str, spec: &ListSpec<C>) -> CoreResult<Self> {
        let raw: RawListQuery = serde_qs::Config::new()
            .max_depth(4)
            .use_form_encoding(true)
            .deserialize_str(query)
            .map_err(|e| {
                CoreError::InvalidQuery(format!("the query string is not understood: {e}"))
            })?;

        let field = |name: &str| -> CoreResult<&ListField<C>> {
            spec.fields.iter().find(|f| f.name == name).ok_or_else(|| {
                let known: Vec<&str> = spec.fields.iter().map(|f| f.name).collect();
                CoreError::InvalidQuery(format!(
                    "unknown field `{name}`; fields: {}",
                    known.join(", ")
                ))
            })
        };

        let mut filters = Vec::new();
        for (name, ops) in raw.filters {
            let f = field(&name)?;
            for (op_name, raw_value) in ops {
                let op = Op::parse(&op_name).ok_or_else(|| {
                    CoreError::InvalidQuery(format!(
                        "unknown operator `{op_name}` on `{name}`; operators: $eq $ne $in $containsi $gt $gte $lt $lte $null"
                    ))
                })?;
                if !op.allowed_for(f.kind) {
                    return Err(CoreError::InvalidQuery(format!(
                        "operator `{op_name}` does not apply to `{name}`"
                    )));
                }
                let texts = raw_value.into_vec()?;
                if texts.is_empty() || (op != Op::In && texts.len() != 1) {
                    return Err(CoreError::InvalidQuery(format!(
                        "`{name}` `{op_name}` takes {}",
                        if op == Op::In {
                            "at least one value"
                        } else {
                            "exactly one value"
                        }
                    )));
                }
                let mut op = op;
                let mut values = Vec::with_capacity(texts.len());
                for t in &texts {
                    // `$null` takes true or false whatever the field's type.
                    let kind = if op == Op::Null {
                        FieldKind::Boolean
                    } else {
                        f.kind
                    };
                    let (value, shifted) = parse_value(&name, kind, op, t)?;
                    if let Some(new_op) = shifted {
                        op = new_op;
                    }
                    values.push(value);
                }
                filters.push(Filter {
                    column: f.column,
                    op,
                    values,
                });
            }
        }

        let mut sort = Vec::new();
        if let Some(raw_sort) = raw.sort {
            for item in raw_sort.into_vec()? {
                for part in item.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let (name, dir) = part.split_once(':').unwrap_or((part, "asc"));
                    let desc = match dir.to_ascii_lowercase().as_str() {
                        "asc" => false,
                        "desc" => true,
                        other => {
                            return Err(CoreError::InvalidQuery(format!(
                                "sort direction `{other}` must be asc or desc"
                            )));
                        }
                    };
                    sort.push((field(name)?.column, desc));
                }
            }
        }
        if sort.is_empty() {
            sort.extend_from_slice(spec.default_sort);
        }
        sort.push((spec.tiebreak, false));

        let page = parse_positive(raw.pagination.page.as_deref(), "pagination[page]", 1)?;
        let page_size = parse_positive(
            raw.pagination.page_size.as_deref(),
            "pagination[pageSize]",
            DEFAULT_PAGE_SIZE,
        )?;
        if page_size > MAX_PAGE_SIZE {
            return Err(CoreError::InvalidQuery(format!(
                "pagination[pageSize] is at most {MAX_PAGE_SIZE}"
            )));
        }
        if page > 1_000_000 {
            return Err(CoreError::InvalidQuery(
                "pagination[page] is too large".into(),
            ));
        }
        Ok(ListQuery {
            filters,
            sort,
            page,
            page_size,
        })
    }

    /// Adds this query's filters to a select (no sort or paging), e.g. for CSV export.
    pub fn apply_filters<E: EntityTrait<Column = C>>(&self, mut select: Select<E>) -> Select<E> {
        for f in &self.filters {
            let col = f.column;
            let first = f.values.first().cloned().unwrap_or(Value::Bool(None));
            select = match f.op {
                Op::Eq => select.filter(col.eq(first)),
                Op::Ne => select.filter(col.ne(first)),
                Op::Gt => select.filter(col.gt(first)),
                Op::Gte => select.filter(col.gte(first)),
                Op::Lt => select.filter(col.lt(first)),
                Op::Lte => select.filter(col.lte(first)),
                Op::In => select.filter(col.is_in(f.values.clone())),
                Op::Null if first == Value::Bool(Some(false)) => select.filter(col.is_not_null()),
                Op::Null => select.filter(col.is_null()),
                Op::ContainsI => {
                    let needle = match &first {
                        Value::String(Some(s)) => s.to_lowercase(),
                        _ => String::new(),
                    };
                    let pattern = format!("%{}%", escape_like(&needle));
                    select.filter(
                        Expr::expr(Func::lower(Expr::col(col)))
                            .like(LikeExpr::new(pattern).escape('\\')),
                    )
                }
            };
        }
        select
    }

    /// Adds filters and sort (no paging).
    pub fn apply_filters_and_sort<E: EntityTrait<Column = C>>(
        &self,
        select: Select<E>,
    ) -> Select<E> {
        let mut select = self.apply_filters(select);
        for (col, desc) in &self.sort {
            select = select.order_by(*col, if *desc { Order::Desc } else { Order::Asc });
        }
        select
    }

    /// Runs the query: one count and one page fetch.
    pub async fn fetch<E, D>(&self, select: Select<E>, db: &D) -> CoreResult<Page<E::Model>>
    where
        E: EntityTrait<Column = C>,
        E::Model: Send + Sync,
        D: ConnectionTrait,
    {
        let select = self.apply_filters_and_sort(select);
        let total = select.clone().count(db).await?;
        let data = select
            .offset((self.page - 1) * self.page_size)
            .limit(self.page_size)
            .all(db)
            .await?;
        Ok(Page {
            data,
            meta: PageMeta {
                pagination: Pagination {
                    page: self.page,
                    page_size: self.page_size,
                    page_count: total.div_ceil(self.page_size),
                    total,
                },
            },
        })
    }
}

fn parse_positive(raw: Option<&str>, what: &str, default: u64) -> CoreResult<u64> {
    match raw {
        None => Ok(default),
        Some(s) => match s.trim().parse::<u64>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(CoreError::InvalidQuery(format!(
                "{what} must be a whole number from 1"
            ))),
        },
    }
}

/// Parses one filter value; a date-only bound may shift the operator so the whole day is included.
fn parse_value(name: &str, kind: FieldKind, op: Op, text: &str) -> CoreResult<(Value, Option<Op>)> {
    let bad = |what: &str| CoreError::InvalidQuery(format!("`{name}`: `{text}` is not {what}"));
    Ok(match kind {
        FieldKind::Text => (text.to_owned().into(), None),
        FieldKind::Uuid => (
            Uuid::parse_str(text).map_err(|_| bad("a UUID"))?.into(),
            None,
        ),
        FieldKind::Integer => (
            text.trim()
                .parse::<i64>()
                .map_err(|_| bad("a whole number"))?
                .into(),
            None,
        ),
        FieldKind::Boolean => match text {
            "true" | "1" => (true.into(), None),
            "false" | "0" => (false.into(), None),
            _ => return Err(bad("true or false")),
        },
        FieldKind::Enum(allowed) => {
            if !allowed.contains(&text) {
                return Err(CoreError::InvalidQuery(format!(
                    "`{name}`: `{text}` is not one of {}",
                    allowed.join(", ")
                )));
            }
            (text.to_owned().into(), None)
        }
        FieldKind::Date => (
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| bad("a YYYY-MM-DD date"))?
                .into(),
            None,
        ),
        FieldKind::Timestamp => {
            if let Ok(t) = DateTime::parse_from_rfc3339(text) {
                (t.with_timezone(&Utc).into(), None)
            } else if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                // A bare date means the whole day (UTC): `$lte 2026-11-21` includes that day.
                let (day, shifted) = match op {
                    Op::Lte => (d.succ_opt().ok_or_else(|| bad("a date"))?, Some(Op::Lt)),
                    Op::Gt => (d.succ_opt().ok_or_else(|| bad("a date"))?, Some(Op::Gte)),
                    _ => (d, None),
                };
                let start = day
                    .and_hms_opt(0, 0, 0)
                    .ok_or_else(|| bad("a date"))?
                    .and_utc();
                (start.into(), shifted)
            } else {
                return Err(bad("an RFC 3339 timestamp or a YYYY-MM-DD date"));
            }
        }
    })
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A page of results in the contract's envelope.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The rows.
    pub data: Vec<T>,
    /// Paging facts.
    pub meta: PageMeta,
}

/// The `meta` of a page.
#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
pub struct PageMeta {
    /// Pagination facts.
    pub pagination: Pagination,
}

/// Pagination facts of a page.
#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// Page number, from 1.
    pub page: u64,
    /// Rows per page.
    pub page_size: u64,
    /// Number of pages.
    pub page_count: u64,
    /// Number of matching rows.
    pub total: u64,
}

impl<T> Page<T> {
    /// Maps every row, keeping the meta.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            meta: self.meta,
        }
    }

    /// Maps every row with a fallible function.
    pub fn try_map<U, E>(self, f: impl FnMut(T) -> Result<U, E>) -> Result<Page<U>, E> {
        Ok(Page {
            data: self.data.into_iter().map(f).collect::<Result<_, _>>()?,
            meta: self.meta,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UnitStatus;
    use crate::entities::units::Column;

    const SPEC: ListSpec<Column> = ListSpec {
        fields: &[
            ListField {
                name: "status",
                column: Column::Status,
                kind: FieldKind::Enum(UnitStatus::ALL),
            },
            ListField {
                name: "price",
                column: Column::Price,
                kind: FieldKind::Integer,
            },
            ListField {
                name: "blockNumber",
                column: Column::BlockNumber,
                kind: FieldKind::Text,
            },
            ListField {
                name: "createdAt",
                column: Column::CreatedAt,
                kind: FieldKind::Timestamp,
            },
        ],
        default_sort: &[(Column::BlockNumber, false)],
        tiebreak: Column::Id,
    };

    fn parse(q: &str) -> CoreResult<ListQuery<Column>> {
        ListQuery::parse(q, &SPEC)
    }

    #[test]
    fn parses_strapi_brackets_plain_and_percent_encoded() {
        let q = parse("filters[status][$in][0]=BOOKED&filters[status][$in][1]=SOLD&filters[price][$lte]=500000000&sort=price:desc,blockNumber:asc&pagination[page]=2&pagination[pageSize]=10").unwrap();
        assert_eq!(q.filters.len(), 2);
        let inf = q.filters.iter().find(|f| f.op == Op::In).unwrap();
        assert_eq!(inf.values.len(), 2);
        assert_eq!(q.sort.len(), 3);
        assert_eq!((q.page, q.page_size), (2, 10));

        let enc = parse("filters%5Bstatus%5D%5B%24eq%5D=AVAILABLE").unwrap();
        assert_eq!(enc.filters.len(), 1);
        assert_eq!(enc.filters[0].op, Op::Eq);
    }

    #[test]
    fn defaults() {
        let q = parse("").unwrap();
        assert_eq!((q.page, q.page_size), (1, DEFAULT_PAGE_SIZE));
        assert_eq!(q.sort.len(), 2);
    }

    #[test]
    fn rejects_unknown_fields_operators_values_and_bad_paging() {
        for bad in [
            "filters[nope][$eq]=1",
            "filters[status][$like]=A",
            "filters[status][$eq]=available",
            "filters[price][$gt]=cheap",
            "filters[status][$containsi]=A",
            "sort=nope:asc",
            "sort=price:sideways",
            "pagination[pageSize]=101",
            "pagination[page]=0",
            "pagination[page]=-1",
            "pagination[limit]=5",
            "unknown=1",
            "filters[createdAt][$gte]=yesterday",
        ] {
            assert!(
                matches!(parse(bad), Err(CoreError::InvalidQuery(_))),
                "{bad} should be invalid_query"
            );
        }
    }

    #[test]
    fn date_only_upper_bound_includes_the_day() {
        let q = parse("filters[createdAt][$lte]=2026-11-21").unwrap();
        assert_eq!(q.filters[0].op, Op::Lt);
    }

    #[test]
    fn like_escaping() {
        assert_eq!(escape_like("50%_a\\"), "50\\%\\_a\\\\");
    }
}
