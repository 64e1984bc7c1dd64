//! The impact stage: from the user stage's Parquet outputs to "who was hurt
//! and what it likely cost", with polars' lazy API.
//!
//! Revenue lost (docs/revenue.md): for each funnel step (and for pages on
//! no step), the share of its page views in sessions without a failure
//! that belong to sessions that converted is the baseline, each unaffected
//! session weighted by 1 / P(escaping the failures of its page views). An
//! affected session that did not convert and left right after a failure
//! counts that baseline times its visible cart value, or the step's mean
//! order where none is visible. Not counted: a session whose last page
//! view was struck only by kinds of failure whose struck page views end
//! their visit no more often than chance would have them end it anyway
//! (`exits_by_kind`). A session whose last page the model knows nothing of
//! (no URL, or a step no unaffected session viewed) counts the rate of
//! unaffected visitors who went on from the page before it. The 95 %
//! interval combines whether each would have bought (binomial) with the
//! rates' own uncertainty (Wilson).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use polars::prelude::*;

use crate::schema::{FailureColumns, FailureRecord, PageColumns, PageRecord, SessionColumns, SessionRecord};
use crate::schema::{UserColumns, UserRecord, files};

/// The columns read, by file.
const USER: UserColumns = UserRecord::COLUMN;
const SESSION: SessionColumns = SessionRecord::COLUMN;
const PAGE: PageColumns = PageRecord::COLUMN;
const FAILURE: FailureColumns = FailureRecord::COLUMN;

/// Settings of the revenue model.
#[derive(Clone, Debug, Default)]
pub struct RevenueModel {
    /// Funnel steps in order.
    pub funnel: Vec<String>,
    /// Average order value where a session shows no cart value (default:
    /// the mean order of the capture).
    pub average_order_value: Option<f64>,
}

/// One funnel step's inputs to the estimate.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepImpact {
    /// Step name (`(none)`: pages no `[[pages]]` rule names).
    pub step: String,
    /// Share of this step's page views (every session) that met a noticed
    /// failure: what an unaffected session escaped at each view here.
    pub hazard: f64,
    /// Page views at this step in sessions without a noticed failure.
    pub unaffected_views: u64,
    /// Of those, page views of sessions that converted.
    pub unaffected_converted_views: u64,
    /// Sessions without a failure that viewed this step.
    pub unaffected_sessions: u64,
    /// Those page views, each weighted by 1 / P(its session escaping the
    /// failures of its page views) (docs/revenue.md).
    pub weighted_views: f64,
    /// Of those, the weight of page views of sessions that converted.
    pub weighted_converted_views: f64,
    /// The baseline: the (weighted) share of this step's page views that
    /// belong to converting sessions.
    pub baseline: f64,
    /// Lower end of the baseline's 95 % interval.
    pub baseline_low: f64,
    /// Upper end.
    pub baseline_high: f64,
    /// What a lost session here would have ordered at least: the
    /// (weighted) mean order of the converting page views at this step
    /// (`[revenue] average_order_value` when set).
    pub order_value: f64,
    /// How far those orders spread around their mean (weighted standard
    /// deviation): what a lost session without a visible cart would have
    /// ordered is uncertain by that much too.
    pub order_spread: f64,
    /// Affected sessions whose last page view was at this step.
    pub affected_sessions: u64,
    /// Of those, converted anyway.
    pub affected_converted: u64,
    /// Share of the (weighted) unaffected page views at this step that
    /// ended their visit: how often a visit ends here anyway.
    pub exit_rate: f64,
    /// Of the (weighted) unaffected page views at this step that did not
    /// end their visit, the share in sessions that converted: what a
    /// visitor who went on from this step would have bought. For
    /// `(entry)`, the share of unaffected visits that converted.
    pub go_on_rate: f64,
    /// Lower end of its 95 % interval.
    pub go_on_low: f64,
    /// Upper end.
    pub go_on_high: f64,
    /// Affected sessions that did not convert and left right after a
    /// failure at this step: the ones counted as lost.
    pub lost_sessions: u64,
    /// Their value: each its cart, or `order_value` where none is visible.
    pub lost_value: f64,
    /// Sessions that left right after a failure at this step but are not
    /// counted: every failure on their last page view was of a kind after
    /// which visitors leave no more often than they do anyway
    /// (`exits_by_kind`).
    pub left_anyway: u64,
    /// Sessions that left after a failure on a page the model knows
    /// nothing of (no URL, or a class no unaffected session viewed) right
    /// after a page of this step (`(entry)`: their first page): they were
    /// going on from here.
    pub went_on_sessions: u64,
    /// Their value: each its cart, or `order_value`.
    pub went_on_value: f64,
    /// Revenue lost at this step: `baseline × lost_value + go_on_rate ×
    /// went_on_value`.
    pub lost: f64,
}

/// How often the page views a kind of failure struck ended their visit,
/// against how often they would have anyway.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct KindExits {
    /// Page views it struck (at a step unaffected sessions viewed, not
    /// reloaded right after).
    pub views: u64,
    /// Of those, the last of a visit that did not convert.
    pub exits: u64,
    /// How many would have been the last anyway: each page view at its
    /// step's `exit_rate`.
    pub expected_exits: f64,
    /// What chance alone would rarely exceed: `expected_exits` plus 1.645
    /// standard deviations of that count (each page view a coin at its
    /// step's exit rate; one-sided 95 %).
    pub threshold: f64,
    /// `exits > threshold`: the kind makes visitors leave, and visits
    /// that ended on it count as lost.
    pub counted: bool,
}

/// An estimate with its interval.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Estimate {
    /// Point estimate.
    pub value: f64,
    /// Lower end (95 %).
    pub low: f64,
    /// Upper end (95 %).
    pub high: f64,
}

/// The numbers of a run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Impact {
    /// Users.
    pub users_total: u64,
    /// Users with at least one noticed failure.
    pub users_affected: u64,
    /// Their share, percent.
    pub users_affected_pct: f64,
    /// Sessions.
    pub sessions_total: u64,
    /// Sessions with at least one noticed failure.
    pub sessions_affected: u64,
    /// Noticed failures by kind.
    pub failures_by_kind: BTreeMap<String, u64>,
    /// Orders placed.
    pub orders: u64,
    /// Value of the orders placed.
    pub revenue_realised: f64,
    /// Average order value used for sessions without a visible cart.
    pub average_order_value: f64,
    /// Revenue lost, with its interval.
    pub revenue_lost: Estimate,
    /// Every input of the estimate, step by step.
    pub funnel: Vec<StepImpact>,
    /// Routes with the most noticed failures (top 10: route, failures,
    /// users).
    pub top_failing_pages: Vec<(String, u64, u64)>,
    /// Noticed failures by route (the most failing first, up to 50).
    pub by_route: Vec<RouteImpact>,
    /// Noticed failures and affected users per hour (epoch seconds of the
    /// hour's start).
    pub by_hour: Vec<HourImpact>,
    /// Noticed failures and affected users per server.
    pub by_server: Vec<(String, u64, u64)>,
    /// Noticed failures and affected users per page class (`[[pages]]`
    /// name).
    pub by_page_name: Vec<(String, u64, u64)>,
    /// Apdex per page class (`[[pages]]` name).
    pub apdex_by_page: Vec<PageApdex>,
    /// Per funnel step: sessions that reached it and converted, affected
    /// and not.
    pub funnel_comparison: Vec<FunnelRow>,
    /// Users with the most noticed failures.
    pub top_affected_users: Vec<TopUser>,
    /// Revenue lost by the kind of failure users left after.
    pub lost_by_kind: BTreeMap<String, f64>,
    /// Revenue lost by the page users left from (top 10: route, lost,
    /// sessions).
    pub lost_by_page: Vec<(String, f64, u64)>,
    /// Per kind of noticed failure: how often the page views it struck
    /// ended their visit, against how often they would have anyway.
    pub exits_by_kind: BTreeMap<String, KindExits>,
}

/// Noticed failures of one route.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RouteImpact {
    /// Route (`/product/{id}`).
    pub route: String,
    /// Noticed failures of its requests.
    pub failures: u64,
    /// Users who met them.
    pub users: u64,
    /// The failures by kind.
    pub by_kind: BTreeMap<String, u64>,
    /// Page views of the route (0 for a resource: an API call, a script).
    pub views: u64,
    /// Revenue lost by sessions that left from a page of this route.
    pub lost: f64,
}

/// One hour of the capture.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HourImpact {
    /// Start of the hour (epoch seconds).
    pub hour: f64,
    /// Noticed failures.
    pub failures: u64,
    /// Users who met one.
    pub users_affected: u64,
}

/// Apdex of one page class.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PageApdex {
    /// `[[pages]]` name (`(none)` for pages no rule names).
    pub page: String,
    /// Page views.
    pub views: u64,
    /// Satisfied, tolerating, frustrated.
    pub satisfied: u64,
    /// Tolerating.
    pub tolerating: u64,
    /// Frustrated.
    pub frustrated: u64,
    /// (satisfied + tolerating / 2) / views.
    pub score: f64,
}

/// Reached and converted per step, for sessions with and without a
/// failure.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FunnelRow {
    /// Step.
    pub step: String,
    /// Unaffected sessions that viewed it.
    pub reached_unaffected: u64,
    /// Of those, converted.
    pub converted_unaffected: u64,
    /// Affected sessions that viewed it.
    pub reached_affected: u64,
    /// Of those, converted.
    pub converted_affected: u64,
}

/// A user with many failures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TopUser {
    /// Pseudonym.
    pub user: String,
    /// Noticed failures.
    pub failures: u64,
    /// Sessions.
    pub sessions: u64,
    /// Converted.
    pub converted: bool,
    /// Last cart value seen.
    pub cart_value: Option<f64>,
}

fn err(e: PolarsError) -> io::Error {
    io::Error::other(format!("impact stage: {e}"))
}

/// The four record files the impact stage reads, each scanned once: every
/// query starts from a clone, and the clones share what polars learns of
/// the file when the first one is planned (its footer and schema), which
/// a scan of its own per query read again each time.
struct Scans {
    users: LazyFrame,
    sessions: LazyFrame,
    failures: LazyFrame,
    pages: LazyFrame,
}

impl Scans {
    fn open(dir: &Path) -> io::Result<Scans> {
        Ok(Scans {
            users: scan(&dir.join(files::USERS))?,
            sessions: scan(&dir.join(files::SESSIONS))?,
            failures: scan(&dir.join(files::FAILURES))?,
            pages: scan(&dir.join(files::PAGES))?,
        })
    }
}

fn scan(path: &Path) -> io::Result<LazyFrame> {
    let p = path.to_str().ok_or_else(|| io::Error::other(format!("{}: not UTF-8", path.display())))?;
    LazyFrame::scan_parquet(PlRefPath::from(p), ScanArgsParquet::default()).map_err(err)
}

/// Runs `frames` as one query (what they share is computed once) and
/// returns their results in order.
fn collect_all<const N: usize>(frames: [LazyFrame; N]) -> io::Result<[DataFrame; N]> {
    let opt = frames.first().map(LazyFrame::get_current_optimizations).unwrap_or_default();
    let plans = frames.into_iter().map(|f| f.logical_plan).collect();
    let dfs = LazyFrame::collect_all_with_engine(plans, Engine::InMemory, opt).map_err(err)?;
    dfs.try_into().map_err(|_| io::Error::other("a query of the impact stage gave no result"))
}

fn u64_at(df: &DataFrame, col: &str) -> io::Result<u64> {
    let c = df.column(col).map_err(err)?.cast(&DataType::UInt64).map_err(err)?;
    Ok(c.u64().map_err(err)?.get(0).unwrap_or(0))
}

fn f64_at(df: &DataFrame, col: &str) -> io::Result<f64> {
    let c = df.column(col).map_err(err)?.cast(&DataType::Float64).map_err(err)?;
    Ok(c.f64().map_err(err)?.get(0).unwrap_or(0.0))
}

/// The Wilson score interval (95 %) of `k` successes in `n` trials.
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = Z95;
    let (n, p) = (n as f64, k as f64 / n as f64);
    let d = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / d;
    let half = z * ((p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt()) / d;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Reads `users.parquet`, `sessions.parquet` and `failures.parquet` from
/// `dir` and computes the impact.
pub fn impact(dir: &Path, model: &RevenueModel) -> io::Result<Impact> {
    let mut out = Impact::default();

    let scans = Scans::open(dir)?;
    let users = scans
        .users
        .clone()
        .select([len().alias("n"), col(USER.affected).cast(DataType::UInt64).sum().alias("affected")]);
    let totals = scans.sessions.clone().select([
        len().alias("n"),
        col(SESSION.affected).cast(DataType::UInt64).sum().alias("affected"),
        col(SESSION.orders).sum().alias("orders"),
        col(SESSION.order_value).fill_null(lit(0.0)).sum().alias("realised"),
    ]);
    let [users, totals] = collect_all([users, totals])?;
    out.users_total = u64_at(&users, "n")?;
    out.users_affected = u64_at(&users, "affected")?;
    out.users_affected_pct =
        if out.users_total == 0 { 0.0 } else { 100.0 * out.users_affected as f64 / out.users_total as f64 };

    out.sessions_total = u64_at(&totals, "n")?;
    out.sessions_affected = u64_at(&totals, "affected")?;
    out.orders = u64_at(&totals, "orders")?;
    out.revenue_realised = f64_at(&totals, "realised")?;
    out.average_order_value = model.average_order_value.unwrap_or(if out.orders > 0 {
        out.revenue_realised / out.orders as f64
    } else {
        0.0
    });

    let Revenue { mut rows, mut estimate, variance, lost_by_route } = revenue(&scans, model, &mut out)?;
    let half = Z95 * variance.sqrt();
    estimate.low = (estimate.value - half).max(0.0);
    estimate.high = estimate.value + half;
    out.revenue_lost = estimate;
    // In funnel order, then any other step.
    let mut ordered = Vec::new();
    for f in [ENTRY].into_iter().chain(model.funnel.iter().map(String::as_str)).chain(["(none)"]) {
        if let Some(r) = rows.remove(f) {
            ordered.push(r);
        }
    }
    ordered.extend(rows.into_values());
    out.funnel = ordered;

    let failures = scans
        .failures
        .clone()
        .filter(col(FAILURE.severity).eq(lit("critical")).or(col(FAILURE.severity).eq(lit("major"))));
    let by_kind = failures.clone().group_by([col(FAILURE.kind)]).agg([len().alias("n")]).collect().map_err(err)?;
    let kinds = by_kind.column(FAILURE.kind).map_err(err)?.str().map_err(err)?.clone();
    let counts = by_kind.column("n").map_err(err)?.cast(&DataType::UInt64).map_err(err)?;
    let counts = counts.u64().map_err(err)?;
    for i in 0..by_kind.height() {
        if let (Some(k), Some(n)) = (kinds.get(i), counts.get(i)) {
            out.failures_by_kind.insert(k.to_string(), n);
        }
    }
    routes(&scans, failures, &lost_by_route, &mut out)?;
    breakdowns(&scans, model, &mut out)?;
    Ok(out)
}

/// Users listed in [`Impact::top_affected_users`]: those with a noticed
/// failure, most failures first, then by name (bytes).
pub const TOP_USERS: usize = 20;

/// Most routes listed in `by_route`.
const ROUTES_LISTED: u32 = 50;

/// Failures by route: the top failing pages, and per route the failures
/// by kind, the users they struck, the route's page views and the revenue
/// lost by sessions that left from it.
fn routes(scans: &Scans, noticed: LazyFrame, lost_by_route: &[RouteLost], out: &mut Impact) -> io::Result<()> {
    let by = noticed
        .clone()
        .filter(col(FAILURE.route).neq(lit("")))
        .group_by([col(FAILURE.route)])
        .agg([len().alias("failures"), col(FAILURE.user).n_unique().alias("users")])
        .sort_by_exprs(
            [col("failures"), col(FAILURE.route)],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
        .limit(ROUTES_LISTED);
    let kinds = noticed
        .filter(col(FAILURE.route).neq(lit("")))
        .group_by([col(FAILURE.route), col(FAILURE.kind)])
        .agg([len().alias("n")]);
    let views = scans.pages.clone().group_by([col(PAGE.route)]).agg([len().alias("views")]);
    let [by, kinds, views] = collect_all([by, kinds, views])?;
    let (rt, f, u) = (texts(&by, FAILURE.route)?, counts(&by, "failures")?, counts(&by, "users")?);
    out.top_failing_pages = (0..by.height().min(10)).map(|i| (rt[i].clone(), f[i], u[i])).collect();
    let (kr, kk, kn) = (texts(&kinds, FAILURE.route)?, texts(&kinds, FAILURE.kind)?, counts(&kinds, "n")?);
    let views: BTreeMap<String, u64> = texts(&views, PAGE.route)?.into_iter().zip(counts(&views, "views")?).collect();
    let lost: BTreeMap<&str, f64> = lost_by_route.iter().map(|(r, l, _)| (r.as_str(), *l)).collect();
    out.by_route = (0..by.height())
        .map(|i| RouteImpact {
            route: rt[i].clone(),
            failures: f[i],
            users: u[i],
            by_kind: (0..kinds.height()).filter(|&j| kr[j] == rt[i]).map(|j| (kk[j].clone(), kn[j])).collect(),
            views: views.get(&rt[i]).copied().unwrap_or(0),
            lost: lost.get(rt[i].as_str()).copied().unwrap_or(0.0),
        })
        .collect();
    Ok(())
}

/// 95 % two-sided normal quantile.
const Z95: f64 = 1.959_963_984_540_054;

/// 95 % one-sided normal quantile.
const Z95_ONE_SIDED: f64 = 1.644_853_626_951_472_7;

/// Largest weight one unaffected session gets for the failures it escaped
/// (docs/revenue.md): a session so long that it would need more is rare,
/// and must not outweigh the many ordinary ones.
const MAX_WEIGHT: f64 = 10.0;

/// Largest share of failed page views used in the weights: a page class
/// whose views all failed says nothing about the sessions that got through.
const MAX_HAZARD: f64 = 0.9;

/// Largest order, in whole units of money, that the spread of orders
/// (`order_spread`) takes as it is: its squares are summed in 64-bit
/// integers (the same in any order), and a hostile order value must not
/// overflow them.
const MAX_ORDER_UNITS: f64 = 1e6;

/// Steps per unit of a session's log weight (see `revenue`).
const WEIGHT_STEPS: f64 = 1000.0;

fn empty_step(step: &str) -> StepImpact {
    StepImpact {
        step: step.to_string(),
        hazard: 0.0,
        unaffected_views: 0,
        unaffected_converted_views: 0,
        unaffected_sessions: 0,
        weighted_views: 0.0,
        weighted_converted_views: 0.0,
        baseline: 0.0,
        baseline_low: 0.0,
        baseline_high: 1.0,
        order_value: 0.0,
        order_spread: 0.0,
        affected_sessions: 0,
        affected_converted: 0,
        exit_rate: 0.0,
        go_on_rate: 0.0,
        go_on_low: 0.0,
        go_on_high: 1.0,
        lost_sessions: 0,
        lost_value: 0.0,
        left_anyway: 0,
        went_on_sessions: 0,
        went_on_value: 0.0,
        lost: 0.0,
    }
}

/// The row of visitors whose first page failed (docs/revenue.md).
const ENTRY: &str = "(entry)";

/// Revenue lost by a route users left from: route, lost, sessions.
type RouteLost = (String, f64, u64);

/// What the revenue model gives besides what it fills in [`Impact`].
struct Revenue {
    /// Per step, the rows of `funnel`.
    rows: BTreeMap<String, StepImpact>,
    estimate: Estimate,
    variance: f64,
    /// Every route users left from, most lost first.
    lost_by_route: Vec<RouteLost>,
}

/// The revenue model (docs/revenue.md): per step, the rows of `funnel`;
/// the estimate and its variance; revenue lost by every route users left
/// from (route, lost, sessions), most first; and `lost_by_kind`,
/// `lost_by_page` (the first ten routes) and `exits_by_kind` in `out`.
fn revenue(scans: &Scans, model: &RevenueModel, out: &mut Impact) -> io::Result<Revenue> {
    let sessions = &scans.sessions;
    let none = || lit("(none)");
    let noticed = || col("severity").eq(lit("critical")).or(col("severity").eq(lit("major")));
    // Page views in the order pages.parquet holds them: a session's page
    // views are written together, in page order. So the next row tells
    // whether a page view is its session's last, and whether the visitor
    // opened the same URL again right after it (a reload); a row's number
    // less its session's first is its position (`page` in
    // failures.parquet, from 1).
    let rows = scans
        .pages
        .clone()
        .select([
            col("session"),
            col("url").fill_null(lit("")),
            col("name").fill_null(none()),
            col("step").fill_null(none()),
        ])
        .with_row_index("row", None)
        .with_columns([
            col("session").shift(lit(-1i64)).alias("next_session"),
            col("url").shift(lit(-1i64)).alias("next_url"),
        ])
        .with_columns([col("next_session").is_null().or(col("next_session").neq(col("session"))).alias("last")])
        .with_columns([col("last")
            .not()
            .and(col("next_url").eq(col("url")))
            .and(col("url").neq(lit("")))
            .alias("reloaded")]);
    let first = rows.clone().group_by([col("session")]).agg([col("row").min().alias("first")]);
    let pages = rows
        .join(first, [col("session")], [col("session")], JoinArgs::new(JoinType::Inner))
        .with_column((col("row").cast(DataType::Int64) - col("first").cast(DataType::Int64) + lit(1i64)).alias("idx"))
        .select([col("session"), col("idx"), col("url"), col("name"), col("step"), col("last"), col("reloaded")])
        // Computed once: six queries below start from it, and each would
        // read pages.parquet and join it again.
        .collect()
        .map_err(err)?
        .lazy();
    // The kinds of noticed failure that struck each page view.
    let struck = scans
        .failures
        .clone()
        .filter(noticed().and(col("page").is_not_null()))
        .select([col("session"), col("page").cast(DataType::Int64).alias("idx"), col("kind")])
        .group_by([col("session"), col("idx"), col("kind")])
        .agg([len().alias("n")])
        .select([col("session"), col("idx"), col("kind")]);

    // How likely a page view of each class is to meet a noticed failure,
    // over every session: an unaffected session escaped that at each of
    // its page views, and buyers (who view more pages) escape less often
    // than browsers. Each unaffected session stands for 1 / P(escaping)
    // sessions like it, so the baselines are not biased towards short
    // visits.
    // (Sorted, here and below: sums of floats in a fixed order give the
    // same summary from run to run.)
    let views = pages
        .clone()
        .group_by([col(PAGE.name), col(PAGE.step)])
        .agg([len().alias("views")])
        .sort_by_exprs([col(PAGE.name), col(PAGE.step)], SortMultipleOptions::default());
    let hit = scans
        .failures
        .clone()
        .filter(noticed().and(col("page").is_not_null()))
        .group_by([col("session"), col("page")])
        .agg([col("page_name").first().fill_null(none()).alias("name")])
        .group_by([col("name")])
        .agg([len().alias("hit")]);
    let [views, hit] = collect_all([views, hit])?;
    let hits: BTreeMap<String, f64> = texts(&hit, "name")?.into_iter().zip(nums(&hit, "hit")?).collect();
    let (vn, vs, vv) = (texts(&views, PAGE.name)?, texts(&views, PAGE.step)?, nums(&views, "views")?);
    let mut by_name: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut by_step: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for i in 0..vn.len() {
        let n = by_name.entry(vn[i].clone()).or_default();
        n.0 += vv[i];
        let s = by_step.entry(vs[i].clone()).or_default();
        s.0 += vv[i];
    }
    for (name, (v, h)) in by_name.iter_mut() {
        *h = hits.get(name).copied().unwrap_or(0.0).min(*v);
    }
    for i in 0..vn.len() {
        // A class's hits are shared among its steps by views (one step per
        // class unless rules say otherwise).
        if let (Some((v, h)), Some(s)) = (by_name.get(&vn[i]), by_step.get_mut(&vs[i]))
            && *v > 0.0
        {
            s.1 += h * vv[i] / v;
        }
    }
    // ln(1 / P(escaping)) of one page view of each class, in millionths
    // (integers add up alike in any order); a session's is their sum,
    // capped (MAX_WEIGHT). polars here has no exp or product: sessions are
    // grouped by that sum in steps of 1/1000 (a weight off by 0.05 % at
    // most) and the weights applied per group.
    let (names, lam): (Vec<String>, Vec<i64>) = by_name
        .iter()
        .map(|(n, (v, h))| {
            let l = -(1.0 - if *v > 0.0 { (h / v).min(MAX_HAZARD) } else { 0.0 }).ln();
            (n.clone(), (l * 1e6).round() as i64)
        })
        .unzip();
    let factors = DataFrame::new(
        names.len(),
        vec![Series::new(PAGE.name.into(), names).into(), Series::new("lam".into(), lam).into()],
    )
    .map_err(err)?;
    let cap = (MAX_WEIGHT.ln() * 1e6).round() as i64;
    let weights = pages
        .clone()
        .join(factors.lazy(), [col(PAGE.name)], [col(PAGE.name)], JoinArgs::new(JoinType::Left))
        .group_by([col(PAGE.session)])
        .agg([col("lam").fill_null(lit(0i64)).sum().alias("ls")])
        .select([
            col(PAGE.session),
            ((when(col("ls").gt(lit(cap))).then(lit(cap)).otherwise(col("ls")).cast(DataType::Float64)
                * lit(WEIGHT_STEPS / 1e6))
                + lit(0.5))
            .cast(DataType::Int64)
            .alias("bucket"),
        ]);

    // Baselines: of the page views at each step in sessions without a
    // failure, the (weighted) share that belongs to sessions that
    // converted, and the mean order of those. Failures strike page views,
    // so a session with more page views (a buyer going through the funnel,
    // or one with a larger basket) is more likely to meet one: weighting by
    // page views keeps that from biasing the estimate. And how many of
    // them end their visit: a visitor hurt on a page where visits end
    // anyway may have been leaving.
    let flags = sessions.clone().select([
        col(SESSION.session),
        col(SESSION.affected),
        col(SESSION.converted),
        // In cents: integers add up alike in any order.
        ((col("order_value").fill_null(lit(0.0)) * lit(100.0)) + lit(0.5)).cast(DataType::Int64).alias("order"),
        // In whole units, to be squared (cents squared could overflow),
        // at most MAX_ORDER_UNITS.
        (when(col("order_value").gt(lit(MAX_ORDER_UNITS)).or(col("order_value").lt(lit(-MAX_ORDER_UNITS))))
            .then(lit(MAX_ORDER_UNITS))
            .otherwise(col("order_value").fill_null(lit(0.0)))
            + lit(0.5))
        .cast(DataType::Int64)
        .alias("units"),
    ]);
    let unaffected = flags
        .clone()
        .filter(col("affected").not())
        .join(weights, [col("session")], [col("session")], JoinArgs::new(JoinType::Left))
        .with_column(col("bucket").fill_null(lit(0i64)))
        // Once, for the two queries that start from it (it holds the
        // weights, another pass over the page views).
        .collect()
        .map_err(err)?
        .lazy();
    let base = pages
        .clone()
        .select([col("session"), col("step"), col("last")])
        .join(unaffected.clone(), [col("session")], [col("session")], JoinArgs::new(JoinType::Inner))
        .group_by([col("step"), col("bucket")])
        .agg([
            len().alias("views"),
            col("converted").cast(DataType::UInt64).sum().alias("converted_views"),
            col("session").n_unique().alias("sessions"),
            (col("converted").cast(DataType::Int64) * col("order")).sum().alias("orders"),
            (col("converted").cast(DataType::Int64) * col("units") * col("units")).sum().alias("orders_sq"),
            col("last").cast(DataType::UInt64).sum().alias("last_views"),
            col("last").and(col("converted")).cast(DataType::UInt64).sum().alias("converted_last_views"),
        ])
        .sort_by_exprs([col(PAGE.step), col("bucket")], SortMultipleOptions::default());
    // Visits as a whole: how many unaffected ones converted (weighted), for
    // a visitor whose very first page failed.
    let visits = unaffected
        .group_by([col("bucket")])
        .agg([
            len().alias("sessions"),
            col("converted").cast(DataType::UInt64).sum().alias("converted"),
            (col("converted").cast(DataType::Int64) * col("order")).sum().alias("orders"),
            (col("converted").cast(DataType::Int64) * col("units") * col("units")).sum().alias("orders_sq"),
        ])
        .sort(["bucket"], SortMultipleOptions::default());
    let affected_by_exit = sessions
        .clone()
        .filter(col(SESSION.affected))
        .select([col(SESSION.exit_step).fill_null(none()).alias("step"), col(SESSION.converted)])
        .group_by([col("step")])
        .agg([len().alias("affected"), col(SESSION.converted).cast(DataType::UInt64).sum().alias("converted")]);
    // The sessions that left right after a failure: hurt, not converted,
    // gone with a failure on their last page view.
    let lost =
        sessions.clone().filter(col("affected").and(col("converted").not()).and(col("left_after_failure"))).select([
            col("session"),
            col("exit_step").fill_null(none()).alias("step"),
            col("exit_failure").fill_null(none()).alias("kind"),
            col("exit_route").fill_null(lit("")).alias("url"),
            col("cart_value").fill_null(lit(0.0)).alias("cart"),
        ]);
    let each = lost.clone().sort(["session"], SortMultipleOptions::default());
    // Their page views, and the kinds that struck them.
    let lost_ids = lost.select([col("session")]);
    let their_pages = pages
        .clone()
        .join(lost_ids.clone(), [col("session")], [col("session")], JoinArgs::new(JoinType::Inner))
        .select([col("session"), col("idx"), col("url"), col("step")]);
    let their_struck =
        struck.clone().join(lost_ids, [col("session")], [col("session")], JoinArgs::new(JoinType::Inner));
    // Per kind of failure and step: the page views it struck that the
    // visitor did not simply reload (the reload stands for them), and how
    // many of those ended a visit that did not convert.
    let by_kind = struck
        .join(pages, [col("session"), col("idx")], [col("session"), col("idx")], JoinArgs::new(JoinType::Inner))
        .filter(col("reloaded").not().and(col("url").neq(lit(""))))
        .join(flags, [col("session")], [col("session")], JoinArgs::new(JoinType::Inner))
        .group_by([col("kind"), col("step")])
        .agg([
            len().alias("views"),
            col("last").and(col("converted").not()).cast(DataType::UInt64).sum().alias("exits"),
        ])
        .sort_by_exprs([col("kind"), col("step")], SortMultipleOptions::default());
    // One query for the seven: the inputs they share are read once.
    let [base, visits, affected_by_exit, each, their_pages, their_struck, by_kind] =
        collect_all([base, visits, affected_by_exit, each, their_pages, their_struck, by_kind])?;

    let mut rows: BTreeMap<String, StepImpact> = BTreeMap::new();
    for (step, (v, h)) in &by_step {
        let r = rows.entry(step.clone()).or_insert_with(|| empty_step(step));
        r.hazard = if *v > 0.0 { h / v } else { 0.0 };
    }
    // Per step: views, converted views, sessions (each session is in one
    // bucket), and the weighted sums.
    let (bs, bk) = (texts(&base, PAGE.step)?, nums(&base, "bucket")?);
    let (bv, bc, bn, bo) =
        (nums(&base, "views")?, nums(&base, "converted_views")?, nums(&base, "sessions")?, nums(&base, "orders")?);
    let (bl, bcl, bq) = (nums(&base, "last_views")?, nums(&base, "converted_last_views")?, nums(&base, "orders_sq")?);
    let mut sums: BTreeMap<String, [f64; 9]> = BTreeMap::new();
    for i in 0..bs.len() {
        let w = (bk[i] / WEIGHT_STEPS).exp();
        let e = sums.entry(bs[i].clone()).or_default();
        let add = [bv[i], bc[i], bn[i], w * bv[i], w * bc[i], w * bo[i] / 100.0, w * bl[i], w * bcl[i], w * bq[i]];
        for (j, v) in add.into_iter().enumerate() {
            e[j] += v;
        }
    }
    let aov = out.average_order_value;
    // A stated average order value is what the user wants used where no
    // cart is visible; else the mean order of the step's converting views.
    let mean_order = |wc: f64, wo: f64| model.average_order_value.unwrap_or(if wc > 0.0 { wo / wc } else { aov });
    // The spread of the orders, from their (weighted) sum and sum of
    // squares.
    let spread = |wc: f64, wo: f64, wq: f64| if wc > 0.0 { (wq / wc - (wo / wc).powi(2)).max(0.0).sqrt() } else { 0.0 };
    for (step, [v, c, n, wv, wc, wo, wl, wcl, wq]) in &sums {
        let r = rows.entry(step.clone()).or_insert_with(|| empty_step(step));
        r.unaffected_views = *v as u64;
        r.unaffected_converted_views = *c as u64;
        r.unaffected_sessions = *n as u64;
        r.weighted_views = *wv;
        r.weighted_converted_views = *wc;
        r.baseline = if *wv > 0.0 { (wc / wv).clamp(0.0, 1.0) } else { 0.0 };
        r.order_value = mean_order(*wc, *wo);
        r.order_spread = spread(*wc, *wo, *wq);
        r.exit_rate = if *wv > 0.0 { (wl / wv).clamp(0.0, 1.0) } else { 0.0 };
        r.go_on_rate = if wv - wl > 0.0 { ((wc - wcl) / (wv - wl)).clamp(0.0, 1.0) } else { 0.0 };
        // Page views of one session are not independent: the intervals
        // count sessions, at the page-view rates.
        let n = n.max(1.0) as u64;
        let (lo, hi) = wilson((r.baseline * n as f64).round() as u64, n);
        r.baseline_low = lo.min(r.baseline);
        r.baseline_high = hi.max(r.baseline);
        let (lo, hi) = wilson((r.go_on_rate * n as f64).round() as u64, n);
        (r.go_on_low, r.go_on_high) = (lo.min(r.go_on_rate), hi.max(r.go_on_rate));
    }
    // A visit that starts: the (weighted) share of unaffected visits that
    // converted, and their mean order.
    {
        let (vb, vn, vc, vo) = (
            nums(&visits, "bucket")?,
            nums(&visits, "sessions")?,
            nums(&visits, "converted")?,
            nums(&visits, "orders")?,
        );
        let vq = nums(&visits, "orders_sq")?;
        let (mut wn, mut wc, mut wo, mut wq) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..vb.len() {
            let w = (vb[i] / WEIGHT_STEPS).exp();
            (wn, wc, wo, wq) = (wn + w * vn[i], wc + w * vc[i], wo + w * vo[i] / 100.0, wq + w * vq[i]);
        }
        let r = rows.entry(ENTRY.to_string()).or_insert_with(|| empty_step(ENTRY));
        let n = vn.iter().sum::<f64>();
        r.unaffected_sessions = n as u64;
        r.go_on_rate = if wn > 0.0 { (wc / wn).clamp(0.0, 1.0) } else { 0.0 };
        r.order_value = mean_order(wc, wo);
        r.order_spread = spread(wc, wo, wq);
        let n = n.max(1.0) as u64;
        let (lo, hi) = wilson((r.go_on_rate * n as f64).round() as u64, n);
        (r.go_on_low, r.go_on_high) = (lo.min(r.go_on_rate), hi.max(r.go_on_rate));
    }
    // A page is known to the model if it has a URL and a step some
    // unaffected session viewed.
    let known = |rows: &BTreeMap<String, StepImpact>, url: &str, step: &str| {
        !url.is_empty() && rows.get(step).is_some_and(|r| r.unaffected_views > 0)
    };

    // Failures that do not make visitors leave: per kind, the page views
    // it struck (on known pages) that ended a visit, against how many
    // would have ended there anyway (each at its step's exit rate).
    let (kk, ks, kv, kx) =
        (texts(&by_kind, "kind")?, texts(&by_kind, "step")?, nums(&by_kind, "views")?, nums(&by_kind, "exits")?);
    for i in 0..kk.len() {
        let Some(r) = rows.get(&ks[i]).filter(|r| r.unaffected_views > 0) else { continue };
        let e = out.exits_by_kind.entry(kk[i].clone()).or_default();
        e.views += kv[i] as u64;
        e.exits += kx[i] as u64;
        e.expected_exits += kv[i] * r.exit_rate;
        // (The variance, kept in `threshold` until it is one.)
        e.threshold += kv[i] * r.exit_rate * (1.0 - r.exit_rate);
    }
    for e in out.exits_by_kind.values_mut() {
        e.threshold = e.expected_exits + Z95_ONE_SIDED * e.threshold.sqrt();
        e.counted = e.exits as f64 > e.threshold;
    }
    let counted = |kind: &str| out.exits_by_kind.get(kind).is_none_or(|e| e.counted);

    let (as_, an, ac) = (
        texts(&affected_by_exit, "step")?,
        nums(&affected_by_exit, "affected")?,
        nums(&affected_by_exit, "converted")?,
    );
    for i in 0..as_.len() {
        let r = rows.entry(as_[i].clone()).or_insert_with(|| empty_step(&as_[i]));
        r.affected_sessions = an[i] as u64;
        r.affected_converted = ac[i] as u64;
    }
    // Each lost session's page views (position, URL, step) and the kinds
    // that struck its pages.
    let mut visit: BTreeMap<&str, Vec<(i64, &str, &str)>> = BTreeMap::new();
    let (ps, pi, pu, pst) = (
        strs(&their_pages, "session")?,
        ints(&their_pages, "idx")?,
        strs(&their_pages, "url")?,
        strs(&their_pages, "step")?,
    );
    for i in 0..ps.len() {
        visit.entry(ps[i]).or_default().push((pi[i], pu[i], pst[i]));
    }
    for v in visit.values_mut() {
        v.sort_unstable();
    }
    let mut kinds_on: BTreeMap<(&str, i64), Vec<&str>> = BTreeMap::new();
    let (ss, si, sk) = (strs(&their_struck, "session")?, ints(&their_struck, "idx")?, strs(&their_struck, "kind")?);
    for i in 0..ss.len() {
        kinds_on.entry((ss[i], si[i])).or_default().push(sk[i]);
    }
    // Each session that left after a failure: where it is priced and what
    // it would have ordered (docs/revenue.md).
    let (eid, es, ek, eu, ec) = (
        strs(&each, "session")?,
        texts(&each, "step")?,
        texts(&each, "kind")?,
        texts(&each, "url")?,
        nums(&each, "cart")?,
    );
    // (step, went on from it, value, no cart seen) of each session counted
    // as lost.
    let mut priced: Vec<Option<(String, bool, f64, bool)>> = Vec::with_capacity(eid.len());
    for i in 0..eid.len() {
        let pages = visit.get(eid[i]).map(Vec::as_slice).unwrap_or(&[]);
        let Some(&(last, url, step)) = pages.last() else {
            priced.push(None);
            continue;
        };
        let cart = ec[i];
        if known(&rows, url, step) {
            // Struck only by kinds that do not make visitors leave: the
            // visit ended there as visits do.
            let kinds = kinds_on.get(&(eid[i], last)).map(Vec::as_slice).unwrap_or(&[]);
            if !kinds.is_empty() && !kinds.iter().any(|k| counted(k)) {
                if let Some(r) = rows.get_mut(step) {
                    r.left_anyway += 1;
                }
                priced.push(None);
                continue;
            }
            let r = rows.entry(es[i].clone()).or_insert_with(|| empty_step(&es[i]));
            let value = if cart > 0.0 { cart } else { r.order_value };
            r.lost_sessions += 1;
            r.lost_value += value;
            priced.push(Some((es[i].clone(), false, value, cart <= 0.0)));
        } else {
            // A page the model knows nothing of (no URL: a failed
            // connection attempt; or a class no unaffected session
            // viewed): the visitor was going on from the page before it.
            let from = pages
                .iter()
                .rev()
                .skip(1)
                .find(|(_, u, s)| known(&rows, u, s))
                .map_or(ENTRY, |(_, _, s)| s)
                .to_string();
            let r = rows.entry(from.clone()).or_insert_with(|| empty_step(&from));
            let value = if cart > 0.0 { cart } else { r.order_value };
            r.went_on_sessions += 1;
            r.went_on_value += value;
            priced.push(Some((from, true, value, cart <= 0.0)));
        }
    }
    // ... and the chance it would have bought: the step's baseline, or
    // the rate of those who went on from it.
    // Per (step, went on): the sum of the values squared, and how many
    // were valued at the step's mean order (no cart seen).
    let mut sq: BTreeMap<(String, bool), (f64, f64)> = BTreeMap::new();
    for (step, went_on, value, unseen) in priced.iter().flatten() {
        let e = sq.entry((step.clone(), *went_on)).or_default();
        e.0 += value * value;
        e.1 += f64::from(u8::from(*unseen));
    }
    let mut estimate = Estimate::default();
    let mut variance = 0.0;
    for ((step, went_on), (sq, unseen)) in &sq {
        let Some(r) = rows.get_mut(step) else { continue };
        let (p, lo, hi, value) = if *went_on {
            (r.go_on_rate, r.go_on_low, r.go_on_high, r.went_on_value)
        } else {
            (r.baseline, r.baseline_low, r.baseline_high, r.lost_value)
        };
        r.lost += p * value;
        estimate.value += p * value;
        // Whether each lost session would have bought is a coin with the
        // rate's odds; what one without a visible cart would have ordered
        // spreads around the mean order; and the rate itself is uncertain.
        let se = (hi - lo) / (2.0 * Z95);
        variance += p * (1.0 - p) * sq + p * unseen * r.order_spread.powi(2) + (value * se).powi(2);
    }
    let mut by_page: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for (i, pr) in priced.iter().enumerate() {
        let Some((step, went_on, value, _)) = pr else { continue };
        let rate = rows.get(step).map_or(0.0, |r| if *went_on { r.go_on_rate } else { r.baseline });
        let lost = rate * value;
        *out.lost_by_kind.entry(ek[i].clone()).or_default() += lost;
        let e = by_page.entry(eu[i].clone()).or_default();
        e.0 += lost;
        e.1 += 1;
    }
    let mut pages: Vec<RouteLost> = by_page.into_iter().map(|(u, (l, n))| (u, l, n)).collect();
    pages.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out.lost_by_page = pages.iter().take(10).cloned().collect();
    Ok(Revenue { rows, estimate, variance, lost_by_route: pages })
}

fn strs<'a>(df: &'a DataFrame, c: &str) -> io::Result<Vec<&'a str>> {
    let s = df.column(c).map_err(err)?.str().map_err(err)?;
    Ok((0..df.height()).map(|i| s.get(i).unwrap_or("")).collect())
}

fn ints(df: &DataFrame, c: &str) -> io::Result<Vec<i64>> {
    let s = df.column(c).map_err(err)?.cast(&DataType::Int64).map_err(err)?;
    let s = s.i64().map_err(err)?.clone();
    Ok((0..df.height()).map(|i| s.get(i).unwrap_or(0)).collect())
}

fn nums(df: &DataFrame, c: &str) -> io::Result<Vec<f64>> {
    Ok(floats(df, c)?.into_iter().map(|v| v.unwrap_or(0.0)).collect())
}

fn texts(df: &DataFrame, c: &str) -> io::Result<Vec<String>> {
    let s = df.column(c).map_err(err)?.cast(&DataType::String).map_err(err)?;
    let s = s.str().map_err(err)?.clone();
    Ok((0..df.height()).map(|i| s.get(i).unwrap_or("(none)").to_string()).collect())
}

fn counts(df: &DataFrame, c: &str) -> io::Result<Vec<u64>> {
    let s = df.column(c).map_err(err)?.cast(&DataType::UInt64).map_err(err)?;
    let s = s.u64().map_err(err)?.clone();
    Ok((0..df.height()).map(|i| s.get(i).unwrap_or(0)).collect())
}

fn floats(df: &DataFrame, c: &str) -> io::Result<Vec<Option<f64>>> {
    let s = df.column(c).map_err(err)?.cast(&DataType::Float64).map_err(err)?;
    let s = s.f64().map_err(err)?.clone();
    Ok((0..df.height()).map(|i| s.get(i)).collect())
}

/// Failures by hour and by server, Apdex by page class, the funnel of
/// affected and unaffected sessions, and the most affected users.
fn breakdowns(scans: &Scans, model: &RevenueModel, out: &mut Impact) -> io::Result<()> {
    let noticed = scans
        .failures
        .clone()
        .filter(col(FAILURE.severity).eq(lit("critical")).or(col(FAILURE.severity).eq(lit("major"))));
    let hours = noticed
        .clone()
        .with_column(col(FAILURE.ts).cast(DataType::Int64).alias("t"))
        .with_column((col("t") - col("t") % lit(3600i64)).alias("hour"))
        .group_by([col("hour")])
        .agg([len().alias("failures"), col(FAILURE.user).n_unique().alias("users")])
        .sort(["hour"], SortMultipleOptions::default());
    let names = noticed
        .clone()
        .group_by([col(FAILURE.page_name).fill_null(lit("(none)"))])
        .agg([len().alias("failures"), col(FAILURE.user).n_unique().alias("users")])
        .sort_by_exprs(
            [col("failures"), col(FAILURE.page_name)],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        );
    let servers = noticed
        .group_by([col(FAILURE.server).fill_null(lit("(none)"))])
        .agg([len().alias("failures"), col(FAILURE.user).n_unique().alias("users")])
        .sort_by_exprs(
            [col("failures"), col(FAILURE.server)],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
        .limit(20);
    let pages = scans.pages.clone();
    let apdex = pages
        .clone()
        .group_by([col(PAGE.name).fill_null(lit("(none)"))])
        .agg([
            len().alias("views"),
            col(PAGE.apdex).eq(lit("satisfied")).cast(DataType::UInt64).sum().alias("satisfied"),
            col(PAGE.apdex).eq(lit("tolerating")).cast(DataType::UInt64).sum().alias("tolerating"),
            col(PAGE.apdex).eq(lit("frustrated")).cast(DataType::UInt64).sum().alias("frustrated"),
        ])
        .sort([PAGE.name], SortMultipleOptions::default());
    let flags = scans.sessions.clone().select([col(SESSION.session), col(SESSION.affected), col(SESSION.converted)]);
    let funnel = pages
        .select([col(PAGE.session), col(PAGE.step).fill_null(lit("(none)"))])
        .join(flags, [col(PAGE.session)], [col(PAGE.session)], JoinArgs::new(JoinType::Inner))
        .group_by([col(PAGE.step), col(SESSION.affected)])
        .agg([
            col(PAGE.session).n_unique().alias("reached"),
            col(PAGE.session).filter(col(SESSION.converted)).n_unique().alias("converted"),
        ]);
    let users = scans
        .users
        .clone()
        .filter(col(USER.failures_total).gt(lit(0u64)))
        .sort_by_exprs(
            [col(USER.failures_total), col(USER.user)],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
        .limit(TOP_USERS as IdxSize)
        .select([
            col(USER.user),
            col(USER.failures_total),
            col(USER.sessions),
            col(USER.converted),
            col(USER.cart_value),
        ]);
    // One query for the six: the files they share are read once.
    let [hours, names, servers, apdex, funnel, users] = collect_all([hours, names, servers, apdex, funnel, users])?;
    let (h, f, u) = (floats(&hours, "hour")?, counts(&hours, "failures")?, counts(&hours, "users")?);
    out.by_hour = (0..hours.height())
        .map(|i| HourImpact { hour: h[i].unwrap_or(0.0), failures: f[i], users_affected: u[i] })
        .collect();

    let (pn, f, u) = (texts(&names, FAILURE.page_name)?, counts(&names, "failures")?, counts(&names, "users")?);
    out.by_page_name = (0..names.height()).map(|i| (pn[i].clone(), f[i], u[i])).collect();

    let (sv, f, u) = (texts(&servers, FAILURE.server)?, counts(&servers, "failures")?, counts(&servers, "users")?);
    out.by_server = (0..servers.height()).map(|i| (sv[i].clone(), f[i], u[i])).collect();

    let (nm, v, sa, to, fr) = (
        texts(&apdex, PAGE.name)?,
        counts(&apdex, "views")?,
        counts(&apdex, "satisfied")?,
        counts(&apdex, "tolerating")?,
        counts(&apdex, "frustrated")?,
    );
    out.apdex_by_page = (0..apdex.height())
        .map(|i| PageApdex {
            page: nm[i].clone(),
            views: v[i],
            satisfied: sa[i],
            tolerating: to[i],
            frustrated: fr[i],
            score: if v[i] == 0 { 0.0 } else { (sa[i] as f64 + to[i] as f64 / 2.0) / v[i] as f64 },
        })
        .collect();

    let (st, re, co) = (texts(&funnel, PAGE.step)?, counts(&funnel, "reached")?, counts(&funnel, "converted")?);
    let af = funnel.column(SESSION.affected).map_err(err)?.cast(&DataType::Boolean).map_err(err)?;
    let af = af.bool().map_err(err)?.clone();
    let mut rows: BTreeMap<String, FunnelRow> = BTreeMap::new();
    for i in 0..funnel.height() {
        let r = rows.entry(st[i].clone()).or_insert_with(|| FunnelRow {
            step: st[i].clone(),
            reached_unaffected: 0,
            converted_unaffected: 0,
            reached_affected: 0,
            converted_affected: 0,
        });
        if af.get(i).unwrap_or(false) {
            r.reached_affected += re[i];
            r.converted_affected += co[i];
        } else {
            r.reached_unaffected += re[i];
            r.converted_unaffected += co[i];
        }
    }
    for f in model.funnel.iter().map(String::as_str).chain(["(none)"]) {
        if let Some(r) = rows.remove(f) {
            out.funnel_comparison.push(r);
        }
    }
    out.funnel_comparison.extend(rows.into_values());

    let (us, ft, se, cv) = (
        texts(&users, USER.user)?,
        counts(&users, USER.failures_total)?,
        counts(&users, USER.sessions)?,
        floats(&users, USER.cart_value)?,
    );
    let conv = users.column(USER.converted).map_err(err)?.cast(&DataType::Boolean).map_err(err)?;
    let conv = conv.bool().map_err(err)?.clone();
    out.top_affected_users = (0..users.height())
        .map(|i| TopUser {
            user: us[i].clone(),
            failures: ft[i],
            sessions: se[i],
            converted: conv.get(i).unwrap_or(false),
            cart_value: cv[i],
        })
        .collect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Fields;
    use crate::{Kind, ParquetWriter};
    use serde_json::{Value, json};

    /// A folder of the user stage's files, made of hand-written records.
    struct Records {
        dir: std::path::PathBuf,
        users: Vec<Value>,
        sessions: Vec<Value>,
        pages: Vec<Value>,
        failures: Vec<Value>,
        /// The value of the next orders.
        order: f64,
    }

    impl Records {
        fn new(name: &str) -> Records {
            let dir = std::env::temp_dir().join(format!("pov-impact-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Records {
                dir,
                users: Vec::new(),
                sessions: Vec::new(),
                pages: Vec::new(),
                failures: Vec::new(),
                order: 100.0,
            }
        }

        /// A session of one user: its page views (name, step), whether it
        /// converted (with an order of 100), which page views met a noticed
        /// failure, and whether it left right after the last.
        fn session(&mut self, pages: &[(&str, Option<&str>)], converted: bool, failed: &[usize], left: bool) {
            let pages: Vec<(&str, Option<&str>, &str)> = pages.iter().map(|&(n, s)| (n, s, "/x")).collect();
            let failed: Vec<(usize, &str)> = failed.iter().map(|&i| (i, "server_error")).collect();
            self.visit(&pages, converted, &failed, left);
        }

        /// A session of one user: its page views (name, step, URL: empty
        /// for a page known only by a failed connection attempt), whether
        /// it converted (with an order of `order`), the page views (from 0)
        /// that met a noticed failure with its kind, and whether it left
        /// right after the last.
        fn visit(
            &mut self,
            pages: &[(&str, Option<&str>, &str)],
            converted: bool,
            failed: &[(usize, &str)],
            left: bool,
        ) {
            let n = self.sessions.len();
            let (user, sid) = (format!("u{n}"), format!("u{n}/1"));
            let affected = !failed.is_empty();
            let last = pages.last().and_then(|p| p.1);
            let exit = pages.last().map_or("", |p| p.2);
            let exit_failure = failed.iter().find(|f| f.0 + 1 == pages.len()).map(|f| f.1).filter(|_| left);
            self.users.push(json!({"user": user, "affected": affected, "failures_total": failed.len() as u64,
                "sessions": 1u64, "converted": converted, "cart_value": null}));
            self.sessions.push(json!({"session": sid, "affected": affected, "converted": converted,
                "orders": u64::from(converted), "order_value": if converted { Some(self.order) } else { None },
                "exit_step": last, "left_after_failure": left, "exit_failure": exit_failure,
                "exit_url": exit, "exit_route": exit, "cart_value": null}));
            // Positions from 1, as the user stage numbers page views.
            for (i, (name, step, url)) in pages.iter().enumerate() {
                self.pages.push(json!({"page": format!("{sid}/{}", i + 1), "session": sid, "name": name, "step": step,
                    "apdex": "satisfied", "url": url, "route": url}));
                for (_, kind) in failed.iter().filter(|f| f.0 == i) {
                    self.failures.push(json!({"ts": 0.0, "user": user, "session": sid, "page": i as u64 + 1,
                        "kind": kind, "severity": "major", "page_name": name, "url": url, "route": url, "server": "s"}));
                }
            }
        }

        fn write(&self) -> &Path {
            type File<'a> = (&'a str, &'a [Value], &'a [(&'a str, Kind)]);
            let files: [File<'_>; 4] = [
                (files::USERS, &self.users, UserRecord::FIELDS),
                (files::SESSIONS, &self.sessions, SessionRecord::FIELDS),
                (files::PAGES, &self.pages, PageRecord::FIELDS),
                (files::FAILURES, &self.failures, FailureRecord::FIELDS),
            ];
            for (name, rows, cols) in files {
                let f = std::fs::File::create(self.dir.join(name)).unwrap();
                let mut w = ParquetWriter::new(std::io::BufWriter::new(f), cols).unwrap();
                for r in rows {
                    w.push(r).unwrap();
                }
                w.finish().unwrap();
            }
            &self.dir
        }
    }

    impl Drop for Records {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// 10,000 buyers (5 page views) and about 10,000 browsers (2) meet failures
    /// at 1 in 10 page views: fewer buyers come through unhurt (59 % against
    /// 81 %), so unaffected sessions alone make buyers look rarer than they
    /// are (42 % of home views instead of 50 %, 59 % of product views
    /// instead of 67 %). The weights undo that. And sessions that left
    /// from a page on no funnel step are priced at
    /// the rate of unaffected sessions on such pages (none bought), not at
    /// the rate over every step.
    #[test]
    fn baselines_undo_the_selection_of_unhurt_sessions_and_no_step_is_a_step() {
        let mut r = Records::new("weights");
        // One page class per step, as `[[pages]]` rules make them.
        let page = |s: &'static str| (s, Some(s));
        let buyer = [page("home"), page("product"), page("product"), page("checkout"), page("confirmation")];
        let browser = [page("home"), page("product")];
        // Unhurt: 10,000 × 0.9^5 buyers and 10,000 × 0.9^2 browsers.
        for _ in 0..5905 {
            r.session(&buyer, true, &[], false);
        }
        for _ in 0..8100 {
            r.session(&browser, false, &[], false);
        }
        // The hurt ones: 1 in 10 page views of every class failed (1,999 of
        // 19,990 home views, 2,998 of 29,980 product views, 1,000 of
        // 10,000 at checkout and at confirmation). 10 browsers left from
        // the home page right after a failure.
        for _ in 0..1880 {
            r.session(&browser, false, &[0], false);
        }
        for _ in 0..10 {
            r.session(&browser[..1], false, &[0], true);
        }
        let mut hits: Vec<usize> = [(0, 109), (1, 1499), (2, 1499), (3, 1000), (4, 1000)]
            .iter()
            .flat_map(|&(i, n)| std::iter::repeat_n(i, n))
            .collect();
        let second = hits.split_off(4095);
        for (i, first) in hits.into_iter().enumerate() {
            match second.get(i) {
                Some(&two) => r.session(&buyer, false, &[first, two], false),
                None => r.session(&buyer, false, &[first], false),
            }
        }
        // Pages on no step: 20 unhurt sessions that did not buy, 5 that
        // left after a failure there.
        let feed = [("feed", None)];
        for _ in 0..20 {
            r.session(&feed, false, &[], false);
        }
        for _ in 0..5 {
            r.session(&feed, false, &[0], true);
        }
        let imp = impact(
            r.write(),
            &RevenueModel { funnel: vec!["home".into(), "product".into()], average_order_value: None },
        )
        .unwrap();
        let step = |s: &str| imp.funnel.iter().find(|f| f.step == s).unwrap().clone();
        let home = step("home");
        assert!((home.hazard - 0.1).abs() < 1e-9, "{home:?}");
        let naive = home.unaffected_converted_views as f64 / home.unaffected_views as f64;
        assert!((naive - 0.4216).abs() < 1e-3, "{naive}");
        assert!((home.baseline - 0.5).abs() < 0.002, "{home:?}");
        // Product pages: 20,000 of buyers, 9,980 of browsers.
        let product = step("product");
        assert!((product.baseline - 20_000.0 / 29_980.0).abs() < 0.002, "{product:?}");
        // The 10 who left after a failure on the home page would have
        // bought half the time (no cart: at the mean order of the
        // converting views there).
        assert_eq!(home.lost_sessions, 10);
        assert!((home.order_value - 100.0).abs() < 1e-9);
        assert!((home.lost - 500.0).abs() < 2.0, "{home:?}");
        let none = step("(none)");
        assert_eq!(
            (none.unaffected_views, none.lost_sessions, none.baseline, none.lost),
            (20, 5, 0.0, 0.0),
            "{none:?}"
        );
        assert!((imp.revenue_lost.value - home.lost).abs() < 1e-9);
        assert!(imp.revenue_lost.low < 500.0 && 500.0 < imp.revenue_lost.high, "{:?}", imp.revenue_lost);
        assert_eq!(imp.lost_by_kind.get("server_error").map(|v| v.round()), Some(home.lost.round()));
        // Every failure was on route /x: 7,002 of them, struck 5,990 users.
        assert_eq!(imp.top_failing_pages, [("/x".to_string(), 7002, 5990)]);
        let x = &imp.by_route[0];
        assert_eq!((x.route.as_str(), x.failures, x.views), ("/x", 7002, 69_995));
        assert!((x.lost - home.lost).abs() < 1e-9);
    }

    /// Visits that end on a page struck by a kind of failure after which
    /// visitors leave no more often than chance would have them leave that
    /// step anyway (here slow pages: 30 of 100 ended their visit where 40
    /// would have) are not counted as lost; a kind that makes them leave
    /// (server errors: 40 of 50, where 20 would have) is. A failed page view reloaded right
    /// after is judged by its reload, not counted among the page views
    /// the kind struck. And a page the model knows nothing of (no URL) is
    /// priced as a visitor going on from the page before it, or, for the
    /// first page of a visit, as a visit starting.
    #[test]
    fn exits_a_failure_did_not_cause_are_not_lost_and_unknown_pages_go_on_from_the_last_known() {
        let mut r = Records::new("exits");
        let home = ("home", Some("home"), "/");
        let product = |id: &'static str| ("product", Some("product"), id);
        let checkout = ("checkout", Some("checkout"), "/checkout");
        let category = ("category", Some("category"), "/c/1");
        let unknown = ("(none)", None, "");
        // Unhurt: 400 buyers, 400 browsers who leave from a product page,
        // 200 who go on to a category: at the product step 400 of 1,000
        // views end their visit (exit rate 0.4), 400 of 1,000 are of
        // buyers (baseline 0.4) and 400 of the 600 that went on (2/3). The
        // buyers' orders are 50 or 150: 100 on average, give or take 50.
        for i in 0..400 {
            r.order = if i % 2 == 0 { 50.0 } else { 150.0 };
            r.visit(&[home, product("/p/1"), checkout], true, &[], false);
            r.visit(&[home, product("/p/2")], false, &[], false);
        }
        r.order = 100.0;
        for _ in 0..200 {
            r.visit(&[home, product("/p/3"), category], false, &[], false);
        }
        // Slow product pages: 30 visits end there, 70 go on and buy.
        for _ in 0..30 {
            r.visit(&[home, product("/p/4")], false, &[(1, "slow")], true);
        }
        for _ in 0..70 {
            r.visit(&[home, product("/p/4"), checkout], true, &[(1, "slow")], false);
        }
        // Server errors: 40 visits end there, 10 go on and buy, and 20
        // reload the page and buy.
        for _ in 0..40 {
            r.visit(&[home, product("/p/5")], false, &[(1, "server_error")], true);
        }
        for _ in 0..10 {
            r.visit(&[home, product("/p/5"), checkout], true, &[(1, "server_error")], false);
        }
        for _ in 0..20 {
            r.visit(&[home, product("/p/5"), product("/p/5"), checkout], true, &[(1, "server_error")], false);
        }
        // Connection attempts refused: 6 after a product page, 5 on the
        // first page of a visit.
        for _ in 0..6 {
            r.visit(&[home, product("/p/6"), unknown], false, &[(2, "refused")], true);
        }
        for _ in 0..5 {
            r.visit(&[unknown], false, &[(0, "refused")], true);
        }
        let funnel = ["home", "product", "checkout", "category"].map(String::from).to_vec();
        let imp = impact(r.write(), &RevenueModel { funnel, average_order_value: None }).unwrap();
        let step = |s: &str| imp.funnel.iter().find(|f| f.step == s).unwrap().clone();
        let p = step("product");
        assert!((p.exit_rate - 0.4).abs() < 1e-9 && (p.baseline - 0.4).abs() < 1e-9, "{p:?}");
        assert!((p.go_on_rate - 2.0 / 3.0).abs() < 1e-9, "{p:?}");
        let kind = |k: &str| imp.exits_by_kind.get(k).cloned().unwrap();
        // Chance alone would rarely make more than 40 + 1.645 × √(100 ×
        // 0.4 × 0.6) = 48.06 of 100 page views the last of their visit,
        // and 20 + 1.645 × √12 = 25.70 of 50.
        let slow = kind("slow");
        assert_eq!((slow.views, slow.exits, slow.counted), (100, 30, false), "{slow:?}");
        assert!((slow.expected_exits - 40.0).abs() < 1e-9 && (slow.threshold - 48.058).abs() < 1e-3, "{slow:?}");
        let errors = kind("server_error");
        assert_eq!((errors.views, errors.exits, errors.counted), (50, 40, true), "{errors:?}");
        assert!((errors.expected_exits - 20.0).abs() < 1e-9 && (errors.threshold - 25.698).abs() < 1e-3, "{errors:?}");
        // 40 lost at the product step (the 30 slow ones left anyway), 0.4
        // × 100 each.
        assert_eq!((p.lost_sessions, p.left_anyway, p.went_on_sessions), (40, 30, 6), "{p:?}");
        assert!((p.lost - (0.4 * 4000.0 + 2.0 / 3.0 * 600.0)).abs() < 1e-6, "{p:?}");
        // The first page of 5 visits failed: a visit starting converts 400
        // times in 1,000.
        let entry = step("(entry)");
        assert_eq!(entry.went_on_sessions, 5, "{entry:?}");
        assert!((entry.go_on_rate - 0.4).abs() < 1e-9 && (entry.lost - 200.0).abs() < 1e-6, "{entry:?}");
        assert!((imp.revenue_lost.value - 2200.0).abs() < 1e-6, "{:?}", imp.revenue_lost);
        // The interval: per group of sessions priced alike (n, rate,
        // sessions valued at 100 with no cart seen), whether each would
        // have bought, what it would have ordered (100 give or take 50) and
        // the rate's own uncertainty (1,000 unaffected sessions).
        assert!((p.order_spread - 50.0).abs() < 1e-9 && (entry.order_spread - 50.0).abs() < 1e-9, "{p:?}");
        let variance: f64 = [(40.0, 0.4), (6.0, 2.0 / 3.0), (5.0, 0.4)]
            .iter()
            .map(|&(n, q): &(f64, f64)| {
                let (lo, hi) = wilson((q * 1000.0).round() as u64, 1000);
                let se = (hi - lo) / (2.0 * Z95);
                q * (1.0 - q) * n * 100.0 * 100.0 + q * n * 50.0 * 50.0 + (n * 100.0 * se).powi(2)
            })
            .sum();
        let half = Z95 * variance.sqrt();
        let (low, high) = (imp.revenue_lost.low, imp.revenue_lost.high);
        assert!((low - (2200.0 - half)).abs() < 1e-6 && (high - (2200.0 + half)).abs() < 1e-6, "{low} {high} ±{half}");
        assert!(
            (imp.lost_by_kind["server_error"] - 1600.0).abs() < 1e-6
                && (imp.lost_by_kind["refused"] - 600.0).abs() < 1e-6
        );
        assert!(!imp.lost_by_kind.contains_key("slow"), "{:?}", imp.lost_by_kind);
    }

    #[test]
    fn wilson_interval() {
        let (lo, hi) = wilson(50, 100);
        assert!((lo - 0.4038).abs() < 1e-3 && (hi - 0.5962).abs() < 1e-3, "{lo} {hi}");
        assert_eq!(wilson(0, 0), (0.0, 1.0));
        let (lo, hi) = wilson(0, 10);
        assert!(lo == 0.0 && (hi - 0.2775).abs() < 1e-3, "{hi}");
    }
}
