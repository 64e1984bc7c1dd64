//! `report.html`: one self-contained page (no network) with the headline
//! numbers, charts (Chart.js, embedded) and the tables of a run.

use std::fmt::Write as _;

use crate::analyze::Summary;

/// Chart.js, embedded so the report needs no network (crates/pov/assets).
const CHART_JS: &str = include_str!("../assets/chart.umd.min.js");

/// Escapes text for HTML (captured URLs and user agents are untrusted).
pub use pov_replay::html::escape as esc;

/// JSON safe to put inside a `<script>` element (the replay's rule).
fn script_json(v: &serde_json::Value) -> String {
    pov_replay::html::script_json(&v.to_string())
}

fn money(x: f64) -> String {
    let whole = x.abs().trunc() as u64;
    let cents = ((x.abs() - x.abs().trunc()) * 100.0).round() as u64;
    let (whole, cents) = if cents == 100 { (whole + 1, 0) } else { (whole, cents) };
    let digits = whole.to_string();
    let mut grouped = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{}{grouped}.{cents:02}", if x < 0.0 { "-" } else { "" })
}

/// A titled table; every cell is escaped.
fn table(h: &mut String, title: &str, head: &[&str], rows: Vec<Vec<String>>) {
    linked_table(h, title, head, rows, &[]);
}

/// A table whose row `i` has its first cell linked to `links[i]`, if any.
fn linked_table(h: &mut String, title: &str, head: &[&str], rows: Vec<Vec<String>>, links: &[Option<String>]) {
    let _ = write!(h, "<h2>{}</h2>\n<table><tr>", esc(title));
    for c in head {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr>");
    for (i, r) in rows.into_iter().enumerate() {
        h.push_str("<tr>");
        for (j, c) in r.into_iter().enumerate() {
            match links.get(i).and_then(|l| l.as_deref()).filter(|_| j == 0) {
                Some(href) => {
                    let _ = write!(h, "<td><a href=\"{}\">{}</a></td>", esc(href), esc(&c));
                }
                None => {
                    let _ = write!(h, "<td>{}</td>", esc(&c));
                }
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>\n");
}

/// The page.
pub fn render(s: &Summary) -> String {
    let data = serde_json::json!({
        "by_hour": s.by_hour,
        "failures_by_kind": s.failures_by_kind,
        "funnel": s.funnel_comparison,
        "lost": s.funnel.iter().map(|f| serde_json::json!({"step": f.step, "lost": f.lost})).collect::<Vec<_>>(),
        "history": s.history,
        "lost_by_kind": s.lost_by_kind,
        "trend": s.trend,
        "trend_routes": trend_routes(s),
    });
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>pov report</title><style>{CSS}</style></head><body>\n<h1>Who was hurt, and what it cost</h1>\n"
    );
    let span = match (s.capture_start, s.capture_end) {
        (Some(a), Some(b)) => format!("{:.0} s of traffic", b - a),
        _ => "no packets".into(),
    };
    let _ = writeln!(
        h,
        "<p class=\"sub\">{} · {} HTTP transactions · {} bytes missing from the capture (never counted as failures)</p>",
        esc(&span),
        s.transactions,
        s.capture_loss_bytes
    );
    let _ = writeln!(
        h,
        "<div class=\"cards\">\
         <div class=\"card\"><b>{}</b> of {} users affected<br><span>{:.1} %</span></div>\
         <div class=\"card\"><b>{}</b> of {} sessions affected</div>\
         <div class=\"card\"><b>{} {}</b> revenue lost<br><span>95 % interval {} to {}</span></div>\
         <div class=\"card\"><b>{}</b> orders, {} {}</div></div>",
        s.users_affected,
        s.users_total,
        s.users_affected_pct,
        s.sessions_affected,
        s.sessions_total,
        money(s.revenue_lost.value),
        esc(&s.currency),
        money(s.revenue_lost.low),
        money(s.revenue_lost.high),
        s.orders,
        money(s.revenue_realised),
        esc(&s.currency),
    );
    if let Some(d) = &s.delta {
        let _ = writeln!(
            h,
            "<p class=\"sub\">Since {}: affected users {:+} ({:+.2} points), failures {:+}, revenue lost {:+.2}</p>",
            esc(&d.since),
            d.users_affected,
            d.users_affected_pct,
            d.failures,
            d.revenue_lost
        );
    }
    h.push_str(
        "<div class=\"grid\">\
         <figure><figcaption>Affected users and failures per hour</figcaption><canvas id=\"hours\"></canvas></figure>\
         <figure><figcaption>Failures by kind</figcaption><canvas id=\"kinds\"></canvas></figure>\
         <figure><figcaption>Funnel: sessions reaching each step, with and without a failure</figcaption><canvas id=\"funnel\"></canvas></figure>\
         <figure><figcaption>Revenue lost by the step users left from</figcaption><canvas id=\"lost\"></canvas></figure>\
         <figure><figcaption>Revenue lost by the failure users left after</figcaption><canvas id=\"lostkind\"></canvas></figure>",
    );
    if s.history.len() > 1 {
        h.push_str("<figure><figcaption>Night over night: affected users (%) and revenue lost</figcaption><canvas id=\"trend\"></canvas></figure>");
    }
    h.push_str("</div>\n");
    if !s.trend.is_empty() {
        trend(&mut h, s);
    }
    let counts = |v: &[(String, u64, u64)]| -> Vec<Vec<String>> {
        v.iter().map(|(a, n, u)| vec![a.clone(), n.to_string(), u.to_string()]).collect()
    };
    table(
        &mut h,
        "Revenue lost by the page users left from",
        &["route", "lost", "sessions"],
        s.lost_by_page.iter().map(|(u, l, n)| vec![u.clone(), money(*l), n.to_string()]).collect(),
    );
    table(&mut h, "Top failing pages", &["route", "failures", "users"], counts(&s.top_failing_pages));
    table(
        &mut h,
        "Failures by route",
        &["route", "failures", "users", "kinds", "page views", "lost"],
        s.by_route
            .iter()
            .map(|r| {
                let kinds: Vec<String> = r.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
                vec![
                    r.route.clone(),
                    r.failures.to_string(),
                    r.users.to_string(),
                    kinds.join(", "),
                    r.views.to_string(),
                    money(r.lost),
                ]
            })
            .collect(),
    );
    let links: Vec<Option<String>> = s.top_affected_users.iter().map(|u| s.replays.get(&u.user).cloned()).collect();
    linked_table(
        &mut h,
        "Most affected users (a name links to the user's replay)",
        &["user", "failures", "sessions", "converted", "cart"],
        s.top_affected_users
            .iter()
            .map(|u| {
                vec![
                    u.user.clone(),
                    u.failures.to_string(),
                    u.sessions.to_string(),
                    (if u.converted { "yes" } else { "no" }).to_string(),
                    u.cart_value.map(money).unwrap_or_else(|| "-".into()),
                ]
            })
            .collect(),
        &links,
    );
    table(
        &mut h,
        "Apdex by page",
        &["page", "views", "satisfied", "tolerating", "frustrated", "score"],
        s.apdex_by_page
            .iter()
            .map(|p| {
                vec![
                    p.page.clone(),
                    p.views.to_string(),
                    p.satisfied.to_string(),
                    p.tolerating.to_string(),
                    p.frustrated.to_string(),
                    format!("{:.2}", p.score),
                ]
            })
            .collect(),
    );
    robots(&mut h, s);
    table(&mut h, "Failures by page class", &["page", "failures", "users"], counts(&s.by_page_name));
    table(&mut h, "Failures by server", &["server", "failures", "users"], counts(&s.by_server));
    table(
        &mut h,
        "How revenue lost was estimated",
        &["step", "failed views", "baseline", "interval", "order value", "lost sessions", "their value", "lost"],
        s.funnel
            .iter()
            .map(|f| {
                vec![
                    f.step.clone(),
                    format!("{:.1} %", 100.0 * f.hazard),
                    format!("{:.3}", f.baseline),
                    format!("{:.3} to {:.3}", f.baseline_low, f.baseline_high),
                    money(f.order_value),
                    f.lost_sessions.to_string(),
                    money(f.lost_value),
                    money(f.lost),
                ]
            })
            .collect(),
    );
    let _ = writeln!(
        h,
        "</table>\n<p class=\"sub\">A lost session is valued at its cart, or where none was visible at the order value of its step (the mean order of the sessions that bought: {} {} over all). Method: docs/revenue.md.</p>",
        money(s.average_order_value),
        esc(&s.currency)
    );
    let _ = writeln!(
        h,
        "<script>{CHART_JS}</script>\n<script>const POV = {};\n{SCRIPT}</script>\n</body></html>",
        script_json(&data)
    );
    h
}

/// The robots and load generators found, apart from the users.
/// The routes with the most failures over the trend's days (up to 8).
fn trend_routes(s: &Summary) -> Vec<String> {
    let mut total: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for d in &s.trend {
        for (r, n) in &d.failures_by_route {
            *total.entry(r.as_str()).or_default() += n;
        }
    }
    let mut v: Vec<(&str, u64)> = total.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.into_iter().take(8).map(|(r, _)| r.to_string()).collect()
}

/// The trend per day of a dataset (`--history DIR` on a dataset).
fn trend(h: &mut String, s: &Summary) {
    let (first, last) = match (s.trend.first(), s.trend.last()) {
        (Some(a), Some(b)) => (a.date.as_str(), b.date.as_str()),
        _ => return,
    };
    let _ = write!(
        h,
        "<h2 id=\"trend-days\">Per day, every probe: {} to {} ({} days)</h2>\n<div class=\"grid\">\
         <figure><figcaption>Users and affected users per day</figcaption><canvas id=\"dayusers\"></canvas></figure>\
         <figure><figcaption>Revenue lost per day</figcaption><canvas id=\"daylost\"></canvas></figure>\
         <figure><figcaption>Failures by kind per day</figcaption><canvas id=\"daykinds\"></canvas></figure>\
         <figure><figcaption>Failures by route per day (the routes with the most)</figcaption><canvas id=\"dayroutes\"></canvas></figure>\
         </div>\n",
        esc(first),
        esc(last),
        s.trend.len()
    );
    let rows = s
        .trend
        .iter()
        .rev()
        .map(|d| {
            vec![
                d.date.clone(),
                d.probes.join(" "),
                d.users_total.to_string(),
                d.users_affected.to_string(),
                d.failures.to_string(),
                money(d.revenue_lost),
            ]
        })
        .collect();
    table(h, "Days, latest first", &["date", "probes", "users", "affected", "failures", "revenue lost"], rows);
    let routes = trend_routes(s);
    let rows = routes
        .iter()
        .map(|r| {
            let per: Vec<u64> = s.trend.iter().map(|d| d.failures_by_route.get(r).copied().unwrap_or(0)).collect();
            let prev = if per.len() > 1 { per[per.len() - 2].to_string() } else { "-".into() };
            vec![r.clone(), per.iter().sum::<u64>().to_string(), per.last().copied().unwrap_or(0).to_string(), prev]
        })
        .collect();
    table(h, "Failing routes over the days", &["route", "failures", "latest day", "day before"], rows);
}

fn robots(h: &mut String, s: &Summary) {
    let r = &s.robots;
    let _ = writeln!(
        h,
        "<h2>Robots and load generators</h2>\n<p class=\"sub\">{} identities in {} sessions, {} requests, {} failures; {}.</p>",
        r.users,
        r.sessions,
        r.requests,
        r.failures,
        if r.included {
            "counted among users, affected users and revenue (--include-robots)"
        } else {
            "left out of users, affected users and revenue"
        }
    );
    if r.clients.is_empty() {
        return;
    }
    table(
        h,
        "Robots by client",
        &["client", "User-Agent", "rule", "evidence", "identities", "sessions", "requests", "failures"],
        r.clients
            .iter()
            .map(|c| {
                vec![
                    c.client_ip.clone().unwrap_or_else(|| "-".into()),
                    c.user_agent.clone().unwrap_or_else(|| "-".into()),
                    c.rule.clone(),
                    c.evidence.clone(),
                    c.users.to_string(),
                    c.sessions.to_string(),
                    c.requests.to_string(),
                    c.failures.to_string(),
                ]
            })
            .collect(),
    );
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px}.sub{color:#666}\
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:12px 16px;min-width:200px}\
.card b{font-size:20px}.card span{color:#666}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(500px,1fr));gap:16px;margin-top:16px}\
figure{margin:0;border:1px solid #eee;padding:8px}figcaption{font-weight:600;margin-bottom:6px}\
table{border-collapse:collapse;margin-top:6px}td,th{border-bottom:1px solid #eee;padding:3px 10px;text-align:left}\
td:nth-child(n+2){text-align:right}code{font-size:12px}";

const SCRIPT: &str = r#"
(function () {
  let drawn = 0;
  const opts = { animation: false, responsive: true, scales: { y: { beginAtZero: true } } };
  function chart(id, config) {
    const el = document.getElementById(id);
    if (!el) return;
    new Chart(el, Object.assign({ options: opts }, config));
    drawn += 1;
  }
  const hours = POV.by_hour.map(h => new Date(h.hour * 1000).toISOString().slice(0, 16).replace('T', ' '));
  chart('hours', { type: 'line', data: { labels: hours, datasets: [
    { label: 'affected users', data: POV.by_hour.map(h => h.users_affected), borderColor: '#c0392b' },
    { label: 'failures', data: POV.by_hour.map(h => h.failures), borderColor: '#7f8c8d' } ] } });
  const kinds = Object.keys(POV.failures_by_kind);
  chart('kinds', { type: 'bar', data: { labels: kinds, datasets: [
    { label: 'failures', data: kinds.map(k => POV.failures_by_kind[k]), backgroundColor: '#e67e22' } ] } });
  chart('funnel', { type: 'bar', data: { labels: POV.funnel.map(f => f.step), datasets: [
    { label: 'reached, no failure', data: POV.funnel.map(f => f.reached_unaffected), backgroundColor: '#27ae60' },
    { label: 'converted, no failure', data: POV.funnel.map(f => f.converted_unaffected), backgroundColor: '#2ecc71' },
    { label: 'reached, affected', data: POV.funnel.map(f => f.reached_affected), backgroundColor: '#c0392b' },
    { label: 'converted, affected', data: POV.funnel.map(f => f.converted_affected), backgroundColor: '#e74c3c' } ] } });
  chart('lost', { type: 'bar', data: { labels: POV.lost.map(l => l.step), datasets: [
    { label: 'revenue lost', data: POV.lost.map(l => l.lost), backgroundColor: '#8e44ad' } ] } });
  const lk = Object.keys(POV.lost_by_kind);
  chart('lostkind', { type: 'bar', data: { labels: lk, datasets: [
    { label: 'revenue lost', data: lk.map(k => POV.lost_by_kind[k]), backgroundColor: '#16a085' } ] } });
  if (POV.history.length > 1) {
    const runs = POV.history.map(p => p.capture_start ? new Date(p.capture_start * 1000).toISOString().slice(0, 10) : p.run);
    chart('trend', { type: 'line', data: { labels: runs, datasets: [
      { label: 'affected users, %', data: POV.history.map(p => p.users_affected_pct), borderColor: '#c0392b', yAxisID: 'y' },
      { label: 'revenue lost', data: POV.history.map(p => p.revenue_lost), borderColor: '#8e44ad', yAxisID: 'y1' } ] },
      options: { animation: false, scales: { y: { beginAtZero: true, position: 'left' }, y1: { beginAtZero: true, position: 'right' } } } });
  }
  if (POV.trend.length > 0) {
    const days = POV.trend.map(d => d.date);
    chart('dayusers', { type: 'line', data: { labels: days, datasets: [
      { label: 'users', data: POV.trend.map(d => d.users_total), borderColor: '#2980b9' },
      { label: 'affected users', data: POV.trend.map(d => d.users_affected), borderColor: '#c0392b' } ] } });
    chart('daylost', { type: 'bar', data: { labels: days, datasets: [
      { label: 'revenue lost', data: POV.trend.map(d => d.revenue_lost), backgroundColor: '#8e44ad' } ] } });
    const palette = ['#e67e22', '#c0392b', '#2980b9', '#27ae60', '#8e44ad', '#16a085', '#7f8c8d', '#d35400', '#2c3e50', '#f1c40f'];
    const dk = [...new Set(POV.trend.flatMap(d => Object.keys(d.failures_by_kind)))].sort();
    chart('daykinds', { type: 'bar', data: { labels: days, datasets: dk.map((k, i) => (
      { label: k, data: POV.trend.map(d => d.failures_by_kind[k] || 0), backgroundColor: palette[i % palette.length] })) },
      options: { animation: false, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } } });
    chart('dayroutes', { type: 'line', data: { labels: days, datasets: POV.trend_routes.map((r, i) => (
      { label: r, data: POV.trend.map(d => d.failures_by_route[r] || 0), borderColor: palette[i % palette.length] })) } });
  }
  document.body.dataset.charts = String(drawn);
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_money() {
        assert_eq!(esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        let data = serde_json::json!({"u": "</script><!--<script>&\u{2028}"});
        let safe = script_json(&data);
        assert_eq!(safe, r#"{"u":"\u003c/script\u003e\u003c!--\u003cscript\u003e\u0026\u2028"}"#);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap(), data);
        assert_eq!(money(1234567.891), "1,234,567.89");
        assert_eq!(money(0.999), "1.00");
        assert_eq!(money(-5.5), "-5.50");
    }
}
