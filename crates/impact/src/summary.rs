//! The impact stage: from the user stage's Parquet outputs to "who was hurt
//! and what it likely cost", with polars' lazy API.
//!
//! Revenue lost (docs/revenue.md): for each funnel step, the share of its
//! page views (in sessions without a failure) that belong to sessions that
//! converted is the baseline; each affected session that did not convert
//! and left right after a failure counts the baseline of the step it left
//! from times its visible cart value (the average order value where none is
//! visible). The 95 % interval combines whether each would have bought
//! (binomial) with the baselines' own uncertainty (Wilson).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use polars::prelude::*;

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
    /// Page views at this step in sessions without a noticed failure.
    pub unaffected_views: u64,
    /// Of those, page views of sessions that converted.
    pub unaffected_converted_views: u64,
    /// Sessions without a failure that viewed this step.
    pub unaffected_sessions: u64,
    /// The baseline: the share of this step's page views that belong to
    /// converting sessions.
    pub baseline: f64,
    /// Lower end of the baseline's 95 % interval.
    pub baseline_low: f64,
    /// Upper end.
    pub baseline_high: f64,
    /// Affected sessions whose last page view was at this step.
    pub affected_sessions: u64,
    /// Of those, converted anyway.
    pub affected_converted: u64,
    /// Affected sessions that did not convert and left right after a
    /// failure at this step: the ones counted as lost.
    pub lost_sessions: u64,
    /// Their value: cart values, or the average order value where no cart
    /// was visible.
    pub lost_value: f64,
    /// Revenue lost at this step: baseline times that value.
    pub lost: f64,
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
    /// Pages with the most noticed failures: (url, failures, users).
    pub top_failing_pages: Vec<(String, u64, u64)>,
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
    /// Revenue lost by the page users left from (top 10: url, lost,
    /// sessions).
    pub lost_by_page: Vec<(String, f64, u64)>,
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

fn scan(path: &Path) -> io::Result<LazyFrame> {
    let p = path.to_str().ok_or_else(|| io::Error::other(format!("{}: not UTF-8", path.display())))?;
    LazyFrame::scan_parquet(PlRefPath::from(p), ScanArgsParquet::default()).map_err(err)
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
    let z = 1.959_963_984_540_054_f64;
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

    let users = scan(&dir.join("users.parquet"))?
        .select([len().alias("n"), col("affected").cast(DataType::UInt64).sum().alias("affected")])
        .collect()
        .map_err(err)?;
    out.users_total = u64_at(&users, "n")?;
    out.users_affected = u64_at(&users, "affected")?;
    out.users_affected_pct =
        if out.users_total == 0 { 0.0 } else { 100.0 * out.users_affected as f64 / out.users_total as f64 };

    let sessions = scan(&dir.join("sessions.parquet"))?;
    let totals = sessions
        .clone()
        .select([
            len().alias("n"),
            col("affected").cast(DataType::UInt64).sum().alias("affected"),
            col("orders").sum().alias("orders"),
            col("order_value").fill_null(lit(0.0)).sum().alias("realised"),
        ])
        .collect()
        .map_err(err)?;
    out.sessions_total = u64_at(&totals, "n")?;
    out.sessions_affected = u64_at(&totals, "affected")?;
    out.orders = u64_at(&totals, "orders")?;
    out.revenue_realised = f64_at(&totals, "realised")?;
    out.average_order_value = model.average_order_value.unwrap_or(if out.orders > 0 {
        out.revenue_realised / out.orders as f64
    } else {
        0.0
    });

    // Baselines: of the page views at each step in sessions without a
    // failure, the share that belongs to sessions that converted. Failures
    // strike page views, so a session with more page views (a buyer going
    // through the funnel) is more likely to meet one: weighting by page
    // views keeps that from biasing the estimate.
    let none = || lit("(none)");
    let flags = sessions.clone().select([col("session"), col("affected"), col("converted")]);
    let base = scan(&dir.join("pages.parquet"))?
        .select([col("session"), col("step").fill_null(none())])
        .join(flags, [col("session")], [col("session")], JoinArgs::new(JoinType::Inner))
        .filter(col("affected").not())
        .group_by([col("step")])
        .agg([
            len().alias("views"),
            col("converted").cast(DataType::UInt64).sum().alias("converted_views"),
            col("session").n_unique().alias("sessions"),
        ])
        .collect()
        .map_err(err)?;
    // The sessions counted as lost: hurt, not converted, and gone right
    // after the failure; valued at their cart, else the average order.
    let aov = out.average_order_value;
    let value = when(col("cart_value").fill_null(lit(0.0)).gt(lit(0.0))).then(col("cart_value")).otherwise(lit(aov));
    let lost = sessions
        .clone()
        .filter(col("affected").and(col("converted").not()).and(col("left_after_failure")))
        .select([col("exit_step").fill_null(none()).alias("step"), value.alias("value")])
        .group_by([col("step")])
        .agg([
            len().alias("lost_sessions"),
            col("value").sum().alias("value"),
            (col("value") * col("value")).sum().alias("value_sq"),
        ])
        .collect()
        .map_err(err)?;
    let affected_by_exit = sessions
        .clone()
        .filter(col("affected"))
        .select([col("exit_step").fill_null(none()).alias("step"), col("converted")])
        .group_by([col("step")])
        .agg([len().alias("affected"), col("converted").cast(DataType::UInt64).sum().alias("converted")])
        .collect()
        .map_err(err)?;

    let strs = |df: &DataFrame, c: &str| -> io::Result<Vec<String>> {
        let s = df.column(c).map_err(err)?.str().map_err(err)?.clone();
        Ok((0..df.height()).map(|i| s.get(i).unwrap_or("(none)").to_string()).collect())
    };
    let nums = |df: &DataFrame, c: &str| -> io::Result<Vec<f64>> {
        let s = df.column(c).map_err(err)?.cast(&DataType::Float64).map_err(err)?;
        let s = s.f64().map_err(err)?;
        Ok((0..df.height()).map(|i| s.get(i).unwrap_or(0.0)).collect())
    };
    let mut rows: BTreeMap<String, StepImpact> = BTreeMap::new();
    let row = |rows: &mut BTreeMap<String, StepImpact>, step: &str| {
        rows.entry(step.to_string())
            .or_insert_with(|| StepImpact {
                step: step.to_string(),
                unaffected_views: 0,
                unaffected_converted_views: 0,
                unaffected_sessions: 0,
                baseline: 0.0,
                baseline_low: 0.0,
                baseline_high: 1.0,
                affected_sessions: 0,
                affected_converted: 0,
                lost_sessions: 0,
                lost_value: 0.0,
                lost: 0.0,
            })
            .step
            .clone()
    };
    let (bs, bv, bc, bn) =
        (strs(&base, "step")?, nums(&base, "views")?, nums(&base, "converted_views")?, nums(&base, "sessions")?);
    for i in 0..bs.len() {
        row(&mut rows, &bs[i]);
        let r = rows.get_mut(&bs[i]).ok_or_else(|| io::Error::other("step row"))?;
        r.unaffected_views = bv[i] as u64;
        r.unaffected_converted_views = bc[i] as u64;
        r.unaffected_sessions = bn[i] as u64;
        r.baseline = if bv[i] > 0.0 { bc[i] / bv[i] } else { 0.0 };
        // Page views of one session are not independent: the interval
        // counts sessions, at the page-view rate.
        let n = bn[i].max(1.0) as u64;
        let (lo, hi) = wilson((r.baseline * n as f64).round() as u64, n);
        r.baseline_low = lo.min(r.baseline);
        r.baseline_high = hi.max(r.baseline);
    }
    // A step no unaffected session viewed (a page known only by a failed
    // connection attempt, whose URL the SYN does not say), and pages no
    // `[[pages]]` rule names, take the rate over every step.
    let (pool_views, pool_conv): (f64, f64) = (bv.iter().sum(), bc.iter().sum());
    let pool_sessions = out.sessions_total.saturating_sub(out.sessions_affected).max(1);
    let pooled = if pool_views > 0.0 { pool_conv / pool_views } else { 0.0 };
    let (pool_lo, pool_hi) = wilson((pooled * pool_sessions as f64).round() as u64, pool_sessions);
    let (as_, an, ac) =
        (strs(&affected_by_exit, "step")?, nums(&affected_by_exit, "affected")?, nums(&affected_by_exit, "converted")?);
    for i in 0..as_.len() {
        row(&mut rows, &as_[i]);
        let r = rows.get_mut(&as_[i]).ok_or_else(|| io::Error::other("step row"))?;
        r.affected_sessions = an[i] as u64;
        r.affected_converted = ac[i] as u64;
    }
    let (ls, ln, lv, lq) =
        (strs(&lost, "step")?, nums(&lost, "lost_sessions")?, nums(&lost, "value")?, nums(&lost, "value_sq")?);
    let mut estimate = Estimate::default();
    let mut variance = 0.0;
    for i in 0..ls.len() {
        row(&mut rows, &ls[i]);
        let r = rows.get_mut(&ls[i]).ok_or_else(|| io::Error::other("step row"))?;
        r.lost_sessions = ln[i] as u64;
        r.lost_value = lv[i];
        // Pages no rule names are a mixed bag (form posts, broken links):
        // their own rate says nothing about a visitor's intent.
        if r.unaffected_views == 0 || r.step == "(none)" {
            r.baseline = pooled;
            r.baseline_low = pool_lo.min(pooled);
            r.baseline_high = pool_hi.max(pooled);
        }
        r.lost = r.baseline * lv[i];
        estimate.value += r.lost;
        // Whether each lost session would have bought is a coin with the
        // baseline's odds; and the baseline itself is uncertain.
        let p = r.baseline;
        let se = (r.baseline_high - r.baseline_low) / (2.0 * 1.959_963_984_540_054);
        variance += p * (1.0 - p) * lq[i] + (lv[i] * se).powi(2);
    }
    // The same, by the kind of failure users left after and by the page
    // they left from.
    let each = sessions
        .clone()
        .filter(col("affected").and(col("converted").not()).and(col("left_after_failure")))
        .select([
            col("exit_step").fill_null(none()).alias("step"),
            col("exit_failure").fill_null(none()).alias("kind"),
            col("exit_url").fill_null(lit("")).alias("url"),
            when(col("cart_value").fill_null(lit(0.0)).gt(lit(0.0)))
                .then(col("cart_value"))
                .otherwise(lit(aov))
                .alias("value"),
        ])
        .collect()
        .map_err(err)?;
    let (es, ek, eu, ev) = (strs(&each, "step")?, strs(&each, "kind")?, strs(&each, "url")?, nums(&each, "value")?);
    let mut by_page: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for i in 0..es.len() {
        let b = rows.get(&es[i]).map(|r| r.baseline).filter(|_| es[i] != "(none)").unwrap_or(pooled);
        *out.lost_by_kind.entry(ek[i].clone()).or_default() += b * ev[i];
        let e = by_page.entry(eu[i].clone()).or_default();
        e.0 += b * ev[i];
        e.1 += 1;
    }
    let mut pages: Vec<(String, f64, u64)> = by_page.into_iter().map(|(u, (l, n))| (u, l, n)).collect();
    pages.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    pages.truncate(10);
    out.lost_by_page = pages;
    let half = 1.959_963_984_540_054 * variance.sqrt();
    estimate.low = (estimate.value - half).max(0.0);
    estimate.high = estimate.value + half;
    out.revenue_lost = estimate;
    // In funnel order, then any other step.
    let mut ordered = Vec::new();
    for f in model.funnel.iter().map(String::as_str).chain(["(none)"]) {
        if let Some(r) = rows.remove(f) {
            ordered.push(r);
        }
    }
    ordered.extend(rows.into_values());
    out.funnel = ordered;

    let failures = scan(&dir.join("failures.parquet"))?
        .filter(col("severity").eq(lit("critical")).or(col("severity").eq(lit("major"))));
    let by_kind = failures.clone().group_by([col("kind")]).agg([len().alias("n")]).collect().map_err(err)?;
    let kinds = by_kind.column("kind").map_err(err)?.str().map_err(err)?.clone();
    let counts = by_kind.column("n").map_err(err)?.cast(&DataType::UInt64).map_err(err)?;
    let counts = counts.u64().map_err(err)?;
    for i in 0..by_kind.height() {
        if let (Some(k), Some(n)) = (kinds.get(i), counts.get(i)) {
            out.failures_by_kind.insert(k.to_string(), n);
        }
    }
    let pages = failures
        .filter(col("url").neq(lit("")))
        .group_by([col("url")])
        .agg([len().alias("failures"), col("user").n_unique().alias("users")])
        .sort_by_exprs(
            [col("failures"), col("url")],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
        .limit(10)
        .collect()
        .map_err(err)?;
    let urls = pages.column("url").map_err(err)?.str().map_err(err)?.clone();
    let pf = pages.column("failures").map_err(err)?.cast(&DataType::UInt64).map_err(err)?;
    let pu = pages.column("users").map_err(err)?.cast(&DataType::UInt64).map_err(err)?;
    let (pf, pu) = (pf.u64().map_err(err)?, pu.u64().map_err(err)?);
    for i in 0..pages.height() {
        out.top_failing_pages.push((
            urls.get(i).unwrap_or("").to_string(),
            pf.get(i).unwrap_or(0),
            pu.get(i).unwrap_or(0),
        ));
    }
    breakdowns(dir, model, &mut out)?;
    Ok(out)
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
fn breakdowns(dir: &Path, model: &RevenueModel, out: &mut Impact) -> io::Result<()> {
    let noticed = scan(&dir.join("failures.parquet"))?
        .filter(col("severity").eq(lit("critical")).or(col("severity").eq(lit("major"))));
    let hours = noticed
        .clone()
        .with_column(col("ts").cast(DataType::Int64).alias("t"))
        .with_column((col("t") - col("t") % lit(3600i64)).alias("hour"))
        .group_by([col("hour")])
        .agg([len().alias("failures"), col("user").n_unique().alias("users")])
        .sort(["hour"], SortMultipleOptions::default())
        .collect()
        .map_err(err)?;
    let (h, f, u) = (floats(&hours, "hour")?, counts(&hours, "failures")?, counts(&hours, "users")?);
    out.by_hour = (0..hours.height())
        .map(|i| HourImpact { hour: h[i].unwrap_or(0.0), failures: f[i], users_affected: u[i] })
        .collect();

    let names = noticed
        .clone()
        .group_by([col("page_name").fill_null(lit("(none)"))])
        .agg([len().alias("failures"), col("user").n_unique().alias("users")])
        .sort_by_exprs(
            [col("failures"), col("page_name")],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
        .collect()
        .map_err(err)?;
    let (pn, f, u) = (texts(&names, "page_name")?, counts(&names, "failures")?, counts(&names, "users")?);
    out.by_page_name = (0..names.height()).map(|i| (pn[i].clone(), f[i], u[i])).collect();

    let servers = noticed
        .group_by([col("server").fill_null(lit("(none)"))])
        .agg([len().alias("failures"), col("user").n_unique().alias("users")])
        .sort_by_exprs(
            [col("failures"), col("server")],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
        .limit(20)
        .collect()
        .map_err(err)?;
    let (sv, f, u) = (texts(&servers, "server")?, counts(&servers, "failures")?, counts(&servers, "users")?);
    out.by_server = (0..servers.height()).map(|i| (sv[i].clone(), f[i], u[i])).collect();

    let pages = scan(&dir.join("pages.parquet"))?;
    let apdex = pages
        .clone()
        .group_by([col("name").fill_null(lit("(none)"))])
        .agg([
            len().alias("views"),
            col("apdex").eq(lit("satisfied")).cast(DataType::UInt64).sum().alias("satisfied"),
            col("apdex").eq(lit("tolerating")).cast(DataType::UInt64).sum().alias("tolerating"),
            col("apdex").eq(lit("frustrated")).cast(DataType::UInt64).sum().alias("frustrated"),
        ])
        .sort(["name"], SortMultipleOptions::default())
        .collect()
        .map_err(err)?;
    let (nm, v, sa, to, fr) = (
        texts(&apdex, "name")?,
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

    let flags = scan(&dir.join("sessions.parquet"))?.select([col("session"), col("affected"), col("converted")]);
    let funnel = pages
        .select([col("session"), col("step").fill_null(lit("(none)"))])
        .join(flags, [col("session")], [col("session")], JoinArgs::new(JoinType::Inner))
        .group_by([col("step"), col("affected")])
        .agg([
            col("session").n_unique().alias("reached"),
            col("session").filter(col("converted")).n_unique().alias("converted"),
        ])
        .collect()
        .map_err(err)?;
    let (st, re, co) = (texts(&funnel, "step")?, counts(&funnel, "reached")?, counts(&funnel, "converted")?);
    let af = funnel.column("affected").map_err(err)?.cast(&DataType::Boolean).map_err(err)?;
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

    let users = scan(&dir.join("users.parquet"))?
        .filter(col("failures_total").gt(lit(0u64)))
        .sort_by_exprs(
            [col("failures_total"), col("user")],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
        .limit(20)
        .select([col("user"), col("failures_total"), col("sessions"), col("converted"), col("cart_value")])
        .collect()
        .map_err(err)?;
    let (us, ft, se, cv) = (
        texts(&users, "user")?,
        counts(&users, "failures_total")?,
        counts(&users, "sessions")?,
        floats(&users, "cart_value")?,
    );
    let conv = users.column("converted").map_err(err)?.cast(&DataType::Boolean).map_err(err)?;
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

    #[test]
    fn wilson_interval() {
        let (lo, hi) = wilson(50, 100);
        assert!((lo - 0.4038).abs() < 1e-3 && (hi - 0.5962).abs() < 1e-3, "{lo} {hi}");
        assert_eq!(wilson(0, 0), (0.0, 1.0));
        let (lo, hi) = wilson(0, 10);
        assert!(lo == 0.0 && (hi - 0.2775).abs() < 1e-3, "{hi}");
    }
}
