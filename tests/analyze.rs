//! `pov analyze`: the output folder, summary.json against the answer keys,
//! and the revenue estimate against the key's revenue lost.

use std::collections::BTreeMap;
use std::path::Path;

use crate::util::{self, TempDir, s};

fn key_totals(key: &Path) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(key).expect("key")).expect("json");
    v["totals"].clone()
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).expect("summary.json")).expect("json")
}

/// The key's noticed failures by kind, in pov's names (two key kinds may
/// be one of pov's: their counts add up).
fn key_kinds(t: &serde_json::Value) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for (k, v) in t["failures_by_kind"].as_object().unwrap() {
        *m.entry(util::pov_kind(k).to_string()).or_default() += v.as_u64().unwrap();
    }
    m.retain(|_, n| *n > 0);
    m
}

#[test]
fn analyze_writes_every_output_and_matches_the_key() {
    let d = TempDir::new("analyze");
    let out = d.path("report");
    let root = util::root();
    // Masks are keyed per run unless `[privacy] mask_key` is set: set, the
    // replay written below by another run masks alike.
    let cfg = d.path("pov.toml");
    std::fs::write(&cfg, "[privacy]\nmask_key = \"analyze-test\"\n").unwrap();
    let printed =
        util::pov_ok(&["analyze", "--quiet", "-c", s(&cfg), "--out", s(&out), s(&root.join("samples/shop.pcap"))]);
    let mut names: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "failures.parquet",
            "pages.parquet",
            "replays",
            "report.html",
            "sessions.parquet",
            "summary.json",
            "transactions.parquet",
            "users.parquet"
        ]
    );
    let sm = summary(&out);
    // The ten most affected users each have a replay of their own
    // sessions, linked from the report.
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    let replays = sm["replays"].as_object().unwrap();
    let top: Vec<&str> =
        sm["top_affected_users"].as_array().unwrap().iter().map(|u| u["user"].as_str().unwrap()).collect();
    assert_eq!(replays.len(), 10);
    for u in &top[..10] {
        let rel = replays[*u].as_str().unwrap();
        assert!(report.contains(&format!("<td><a href=\"{rel}\">{u}</a></td>")), "{u} not linked");
        let page = std::fs::read_to_string(out.join(rel)).unwrap();
        let data = page.split("id=\"data\">").nth(1).unwrap();
        let data: serde_json::Value = serde_json::from_str(&data[..data.find("</script>").unwrap()]).unwrap();
        let sessions = data["sessions"].as_array().unwrap();
        assert!(!sessions.is_empty());
        assert!(sessions.iter().all(|s| s["user"] == *u));
        assert!(sessions.iter().any(|s| {
            s["failures"].as_array().unwrap().iter().any(|f| f["severity"] == "critical" || f["severity"] == "major")
        }));
    }
    assert_eq!(std::fs::read_dir(out.join("replays")).unwrap().count(), 10);
    // Analyze finds them through its spill file; `pov replay html --user`
    // through its own two passes: the same sessions, and the same documents
    // but for which captured copy fills a resource (analyze's replays may
    // take an image from another top user's fetch where this user's browser
    // had it cached).
    let data = |page: &str| -> serde_json::Value {
        let d = page.split("id=\"data\">").nth(1).unwrap();
        serde_json::from_str(&d[..d.find("</script>").unwrap()]).unwrap()
    };
    let alone = d.path("alone.html");
    util::pov_ok(&[
        "replay",
        "html",
        "--quiet",
        "-c",
        s(&cfg),
        "--user",
        top[0],
        "-o",
        s(&alone),
        s(&root.join("samples/shop.pcap")),
    ]);
    let (a, b) = (
        data(&std::fs::read_to_string(out.join(replays[top[0]].as_str().unwrap())).unwrap()),
        data(&std::fs::read_to_string(&alone).unwrap()),
    );
    assert_eq!(a["sessions"], b["sessions"]);
    let shape = |docs: &serde_json::Value| -> Vec<String> {
        docs.as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let mut t = d.as_str().unwrap().to_string();
                for marker in ["pov-res:", "pov-css:"] {
                    let mut out = String::new();
                    let mut rest = t.as_str();
                    while let Some(i) = rest.find(marker) {
                        out.push_str(&rest[..i + marker.len()]);
                        rest = rest[i + marker.len()..].trim_start_matches(|c: char| c.is_ascii_digit());
                        out.push('N');
                    }
                    out.push_str(rest);
                    t = out;
                }
                t.replace(pov_replay::rewrite::MISSING_IMAGE, "pov-res:N")
            })
            .collect()
    };
    assert_eq!(shape(&a["docs"]), shape(&b["docs"]));
    let t = key_totals(&root.join("samples/shop.truth.json"));
    assert_eq!(sm["users_total"], t["users"]);
    assert_eq!(sm["users_affected"], t["users_affected"]);
    assert_eq!(sm["sessions_total"], t["sessions"]);
    assert_eq!(sm["transactions"], t["transactions"]);
    assert_eq!(sm["orders"], t["orders"]);
    assert_eq!(
        (sm["revenue_realised"].as_f64().unwrap() * 100.0).round() as u64,
        t["revenue_realised_cents"].as_u64().unwrap()
    );
    let kinds: BTreeMap<String, u64> =
        sm["failures_by_kind"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect();
    assert_eq!(kinds, key_kinds(&t));
    assert_eq!(sm["capture_loss_bytes"], 0);
    let lost = &sm["revenue_lost"];
    assert!(lost["low"].as_f64().unwrap() <= lost["value"].as_f64().unwrap());
    assert!(lost["value"].as_f64().unwrap() <= lost["high"].as_f64().unwrap());
    // Revenue lost by failure kind adds up to the estimate.
    let by_kind: f64 = sm["lost_by_kind"].as_object().unwrap().values().map(|v| v.as_f64().unwrap()).sum();
    assert!((by_kind - lost["value"].as_f64().unwrap()).abs() < 0.1, "{by_kind} vs {lost}");
    // Every input of the estimate is there.
    assert!(sm["funnel"].as_array().unwrap().iter().any(|f| f["lost_sessions"].as_u64().unwrap() > 0));
    assert!(printed.contains("users: 25 (15 affected"), "{printed}");
    // The breakdowns add up to the totals.
    let total: u64 = kinds.values().sum();
    let sum = |k: &str, f: &dyn Fn(&serde_json::Value) -> u64| sm[k].as_array().unwrap().iter().map(f).sum::<u64>();
    assert_eq!(sum("by_hour", &|h| h["failures"].as_u64().unwrap()), total);
    assert_eq!(sum("by_server", &|r| r[1].as_u64().unwrap()), total);
    assert_eq!(sum("by_page_name", &|r| r[1].as_u64().unwrap()), total);
    assert_eq!(sum("apdex_by_page", &|p| p["views"].as_u64().unwrap()), 154, "the key's page views");
    let home = sm["funnel_comparison"].as_array().unwrap().iter().find(|r| r["step"] == "home").unwrap();
    assert_eq!(
        home["converted_unaffected"].as_u64().unwrap() + home["converted_affected"].as_u64().unwrap(),
        sm["orders"].as_u64().unwrap(),
        "every buyer came through the home page"
    );
    let top: Vec<u64> =
        sm["top_affected_users"].as_array().unwrap().iter().map(|u| u["failures"].as_u64().unwrap()).collect();
    assert!(!top.is_empty() && top.windows(2).all(|w| w[0] >= w[1]), "{top:?}");
    // A second run over the same folder gives the same summary.
    util::pov_ok(&["analyze", "--quiet", "--out", s(&out), s(&root.join("samples/shop.pcap"))]);
    assert_eq!(summary(&out), sm);
}

#[test]
fn analyze_reads_folders_and_globs_and_counts_capture_loss_apart() {
    let d = TempDir::new("analyze-lossy");
    let root = util::root();
    let inputs = d.path("in");
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::copy(root.join("samples/shop-lossy.pcapng"), inputs.join("a.pcapng")).unwrap();
    let out1 = d.path("r1");
    util::pov_ok(&["analyze", "--quiet", "--out", s(&out1), s(&inputs)]);
    let out2 = d.path("r2");
    util::pov_ok(&["analyze", "--quiet", "--out", s(&out2), &format!("{}/*.pcapng", s(&inputs))]);
    let (a, b) = (summary(&out1), summary(&out2));
    assert_eq!(a["users_affected"], b["users_affected"]);
    let t = key_totals(&root.join("samples/shop-lossy.truth.json"));
    assert_eq!(a["capture_loss_bytes"], t["gap_bytes"]);
    assert_eq!(a["sessions_total"], t["sessions"]);
    // The key's 12 affected users less the two whose only failure lies in
    // bytes the capture missed (see samples/README.md).
    assert_eq!(a["users_affected"].as_u64().unwrap(), t["users_affected"].as_u64().unwrap() - 2);
}

/// The revenue estimate on large runs, as issue 14 sets it: on five
/// 5,000-user runs each estimate is within 20 % of the key's revenue lost
/// (the intended baskets of the buyers who gave up) and the interval holds
/// the key in at least four. Who was hurt, and by what, is checked on each
/// run too. Not run by default (about 80 s and 3.5 GB per run, 7 minutes in
/// all on 2 cores); `cargo test --release --test integration -- --ignored
/// revenue_lost_on_large --nocapture`. benches/revenue-seeds.sh makes the
/// same comparison on other seeds for docs/revenue.md.
#[test]
#[ignore]
fn revenue_lost_on_large_generated_runs() {
    let d = TempDir::new("analyze-large");
    let runs = [("31", "default"), ("32", "lossy"), ("33", "lossy"), ("34", "default"), ("35", "default")];
    let mut held = 0;
    for (seed, profile) in runs {
        let (pcap, key, out) = (d.path("run.pcap"), d.path("run.json"), d.path("report"));
        util::synth(&["--users", "5000", "--seed", seed, "--profile", profile], &pcap, &key);
        util::pov_ok(&["analyze", "--quiet", "--replays", "0", "--out", s(&out), s(&pcap)]);
        let (sm, t) = (summary(&out), key_totals(&key));
        let truth = t["revenue_lost_cents"].as_f64().unwrap() / 100.0;
        let l = &sm["revenue_lost"];
        let (v, lo, hi) = (l["value"].as_f64().unwrap(), l["low"].as_f64().unwrap(), l["high"].as_f64().unwrap());
        eprintln!(
            "seed {seed} {profile}: revenue lost {v:.2} ({lo:.2} to {hi:.2}), key {truth:.2}, ratio {:.3}",
            v / truth
        );
        assert!(truth > 0.0 && (v - truth).abs() <= 0.2 * truth, "seed {seed}: {v} vs {truth}");
        held += usize::from(lo <= truth && truth <= hi);
        // Who was hurt, and by what: exact on clean captures; on lossy ones
        // never more than the key (what the capture lost is unknown).
        let kinds: BTreeMap<String, u64> =
            sm["failures_by_kind"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect();
        let (aff, key_aff) = (sm["users_affected"].as_u64().unwrap(), t["users_affected"].as_u64().unwrap());
        eprintln!("seed {seed} {profile}: users affected {aff} (key {key_aff}), failures {kinds:?}");
        if profile == "default" {
            assert_eq!(aff, key_aff, "seed {seed}");
            assert_eq!(kinds, key_kinds(&t), "seed {seed}");
        } else {
            assert!(aff <= key_aff && key_aff - aff <= key_aff / 100, "seed {seed}: {aff} vs {key_aff}");
            for (k, n) in key_kinds(&t) {
                let got = kinds.get(&k).copied().unwrap_or(0);
                assert!(got <= n && n - got <= 1 + n / 50, "seed {seed} {k}: {got} vs {n}");
            }
        }
    }
    assert!(held >= 4, "the interval held the key in {held} of {} runs", runs.len());
}

/// The revenue estimate against the key's revenue lost (the intended
/// baskets of the buyers who gave up after a failure) on two 1,000-user
/// runs: each interval holds the key, and the two estimates together are
/// within a fifth of the two keys together (one 1,000-user run alone
/// swings by a quarter or more: about 60 lost sessions; the 5,000-user
/// table in docs/revenue.md is made by benches/revenue-seeds.sh).
#[test]
fn revenue_lost_within_a_fifth_of_the_intended_baskets() {
    let d = TempDir::new("analyze-revenue");
    let (mut key, mut estimate) = (0.0, 0.0);
    for seed in ["1", "2"] {
        let (pcap, truth, out) = (d.path("run.pcap"), d.path("run.json"), d.path("report"));
        util::synth(&["--users", "1000", "--seed", seed], &pcap, &truth);
        util::pov_ok(&["analyze", "--quiet", "--replays", "0", "--out", s(&out), s(&pcap)]);
        let (sm, t) = (summary(&out), key_totals(&truth));
        let k = t["revenue_lost_cents"].as_f64().unwrap() / 100.0;
        let l = &sm["revenue_lost"];
        let (v, lo, hi) = (l["value"].as_f64().unwrap(), l["low"].as_f64().unwrap(), l["high"].as_f64().unwrap());
        eprintln!("seed {seed}: revenue lost {v:.2} ({lo:.2} to {hi:.2}), key {k:.2}, ratio {:.3}", v / k);
        assert!(k > 0.0 && lo <= k && k <= hi, "seed {seed}: key {k} outside {lo}..{hi}");
        // The key is the intended basket, not the cart left behind.
        let users: serde_json::Value = serde_json::from_slice(&std::fs::read(&truth).unwrap()).unwrap();
        let baskets: u64 = users["users"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["lost_cents"].as_u64().unwrap() > 0)
            .map(|u| {
                u["intended_basket"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| b["qty"].as_u64().unwrap() * b["price_cents"].as_u64().unwrap())
                    .sum::<u64>()
            })
            .sum();
        assert_eq!(baskets, t["revenue_lost_cents"].as_u64().unwrap());
        key += k;
        estimate += v;
    }
    assert!((estimate - key).abs() <= 0.2 * key, "{estimate} vs {key}");
}

/// Routes on the sample: pages and failures carry them, the summary counts
/// failures by route as the failure records do, and the report shows them.
/// A query parameter kept by a rule stays masked.
#[test]
fn routes_group_the_samples_pages_and_failures() {
    let d = TempDir::new("analyze-routes");
    let root = util::root();
    let shop = root.join("samples/shop.pcap");
    let out = d.path("report");
    let cfg = d.path("pov.toml");
    std::fs::write(
        &cfg,
        "[privacy]\nmask_params = [\"order\"]\n\n[[routes]]\npattern = '^/order/confirm$'\nkeep_query = [\"order\"]\n",
    )
    .unwrap();
    util::pov_ok(&["analyze", "--quiet", "-c", s(&cfg), "--out", s(&out), s(&shop)]);
    let sm = summary(&out);
    let jsonl = |cmd: &str| -> Vec<serde_json::Value> {
        util::pov_ok(&[cmd, "--format", "jsonl", "-c", s(&cfg), s(&shop)])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    // Every product page is one route, as many as the key's product views.
    let pages = jsonl("pages");
    let key: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("samples/shop.truth.json")).unwrap()).unwrap();
    let key_products = key["users"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| u["pages"].as_array().unwrap())
        .filter(|p| p["step"] == "product")
        .count();
    let route = |p: &serde_json::Value| p["route"].as_str().unwrap().to_string();
    let products = pages.iter().filter(|p| route(p) == "/product/{id}").count();
    assert!(products > 20, "{products}");
    assert_eq!(products, key_products);
    assert!(pages.iter().all(|p| !route(p).contains('?') || route(p) == "/order/confirm?order={masked}"));
    assert!(pages.iter().any(|p| route(p) == "/order/confirm?order={masked}"));
    assert!(pages.iter().all(|p| !route(p).contains("ORD-")), "no order id in a route");
    // The summary's failures by route are the failure records' noticed
    // ones, grouped.
    let mut by_route: BTreeMap<String, (u64, std::collections::BTreeSet<String>)> = BTreeMap::new();
    let mut empty = 0;
    for f in jsonl("failures") {
        if f["severity"] != "critical" && f["severity"] != "major" {
            continue;
        }
        if route(&f).is_empty() {
            empty += 1;
            continue;
        }
        let e = by_route.entry(route(&f)).or_default();
        e.0 += 1;
        e.1.insert(f["user"].as_str().unwrap().to_string());
    }
    let listed = sm["by_route"].as_array().unwrap();
    assert_eq!(listed.len(), by_route.len().min(50));
    for r in listed {
        let (n, users) = &by_route[r["route"].as_str().unwrap()];
        assert_eq!(r["failures"].as_u64().unwrap(), *n, "{r}");
        assert_eq!(r["users"].as_u64().unwrap(), users.len() as u64, "{r}");
        assert_eq!(r["by_kind"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>(), *n);
    }
    let total: u64 = sm["failures_by_kind"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(by_route.values().map(|v| v.0).sum::<u64>() + empty, total);
    let top = &sm["top_failing_pages"][0];
    let (top_route, top_n) = (top[0].as_str().unwrap(), top[1].as_u64().unwrap());
    assert_eq!(by_route.values().map(|v| v.0).max(), Some(top_n));
    let product = listed.iter().find(|r| r["route"] == "/product/{id}").expect("product pages failed");
    assert_eq!(product["views"].as_u64().unwrap(), products as u64);
    // Revenue lost by the page users left from is by route too.
    let left_from: Vec<&str> = sm["lost_by_page"].as_array().unwrap().iter().map(|x| x[0].as_str().unwrap()).collect();
    assert!(left_from.iter().all(|r| !r.starts_with("/product/") || *r == "/product/{id}"), "{left_from:?}");
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("<h2>Failures by route</h2>"));
    assert!(report.contains(&format!("<td>{top_route}</td><td>{top_n}</td>")), "{top_route} {top_n}");
    assert!(report.contains("<td>/product/{id}</td>"));
}

#[test]
fn fail_if_sets_exit_code_3_for_cron() {
    let d = TempDir::new("analyze-fail-if");
    let out = d.path("r");
    let shop = util::root().join("samples/shop.pcap");
    let run =
        |cond: &str| util::pov(&["analyze", "--quiet", "--out", s(&out), "--fail-if", cond, s(&shop)]).status.code();
    // 15 of 25 users affected: 60 %.
    assert_eq!(run("users_affected_pct > 50"), Some(3));
    assert_eq!(run("users_affected_pct > 60"), Some(0));
    assert_eq!(run("failures_by_kind.server_error >= 2"), Some(3));
    assert_eq!(run("failures_by_kind.redirect_loop > 0"), Some(0));
    // A malformed condition is refused before any capture is read.
    assert_eq!(run("users_affected_pct >> 1"), Some(2));
    assert_eq!(run("no_such_field > 1"), Some(2));
}

#[test]
fn history_adds_earlier_nights_and_the_change() {
    let d = TempDir::new("analyze-history");
    let root = util::root();
    let hist = d.path("nights");
    let night1 = hist.join("2026-11-24");
    util::pov_ok(&["analyze", "--quiet", "--out", s(&night1), s(&root.join("samples/shop.pcap"))]);
    let night2 = hist.join("2026-11-25");
    let printed = util::pov_ok(&[
        "analyze",
        "--out",
        s(&night2),
        "--history",
        s(&hist),
        "--quiet",
        s(&root.join("samples/shop-lossy.pcapng")),
    ]);
    let sm = summary(&night2);
    let h = sm["history"].as_array().unwrap();
    assert_eq!(h.len(), 2, "night 1 and this one: {h:?}");
    assert_eq!(h[0]["users_affected"], 15);
    assert_eq!(h[1]["users_affected"], 10);
    assert_eq!(sm["delta"]["users_affected"], -5);
    assert_eq!(sm["delta"]["failures"], 10 - 16);
    assert!(printed.contains("affected users -5"), "{printed}");
    // Re-running the night gives the same summary (its own folder is not
    // history).
    util::pov_ok(&[
        "analyze",
        "--quiet",
        "--out",
        s(&night2),
        "--history",
        s(&hist),
        s(&root.join("samples/shop-lossy.pcapng")),
    ]);
    assert_eq!(summary(&night2), sm);
    // A history folder holding something else is refused before reading.
    std::fs::create_dir_all(hist.join("junk")).unwrap();
    std::fs::write(hist.join("junk/summary.json"), "{}").unwrap();
    let out = util::pov(&[
        "analyze",
        "--quiet",
        "--out",
        s(&night2),
        "--history",
        s(&hist),
        s(&root.join("samples/shop.pcap")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("junk/summary.json"));
}

#[test]
fn report_loads_in_headless_chromium_with_its_charts() {
    if !util::have("chromium") {
        return;
    }
    let d = TempDir::new("analyze-chromium");
    // Two nights, so the report also draws its trend chart.
    let nights = d.path("nights");
    let out = nights.join("night2");
    util::pov_ok(&[
        "analyze",
        "--quiet",
        "--out",
        s(&nights.join("night1")),
        s(&util::root().join("samples/shop-lossy.pcapng")),
    ]);
    util::pov_ok(&[
        "analyze",
        "--quiet",
        "--out",
        s(&out),
        "--history",
        s(&nights),
        s(&util::root().join("samples/shop.pcap")),
    ]);
    let (console, dom, png) = util::in_chromium(&out.join("report.html"), &d.path("chromium"), "1280,2200");
    // No console message at all: no error, no warning, no uncaught exception.
    assert!(console.is_empty(), "{console:?}");
    // The page's script drew its six charts (the sixth is the trend).
    assert!(dom.contains("data-charts=\"6\""), "charts not drawn");
    assert_eq!(dom.matches("<canvas").count(), 6);
    assert!(dom.contains("15</b> of 25 users affected"));
    // The screenshot is a real picture (a blank page of this size
    // compresses to a few KB).
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 60_000, "screenshot of {} bytes", png.len());
}

// ---------------------------------------------------------------------------
// One pass or an honest error; signals and full disks (issue 12).

use crate::cli::{
    feed_fifo, mkfifo, names_in, pov_with_file_limit, send_signal, spawn_pov, synth_capture, tree, wait_within,
};
use std::io::Write;
use std::process::Stdio;

/// What the analyze tests expect in an output folder.
const OUTPUTS: [&str; 8] = [
    "failures.parquet",
    "pages.parquet",
    "replays",
    "report.html",
    "sessions.parquet",
    "summary.json",
    "transactions.parquet",
    "users.parquet",
];

#[test]
fn fail_if_with_an_unknown_field_or_kind_is_refused_before_reading() {
    let d = TempDir::new("analyze-fail-if-early");
    // A named pipe nobody writes: opening it would block for ever, so an
    // answer proves no input was opened.
    let fifo = d.path("never.pipe");
    mkfifo(&fifo);
    let out = d.path("r");
    let refuse = |cond: &str| {
        let child = spawn_pov(&["analyze", "--quiet", "--out", s(&out), "--fail-if", cond, s(&fifo)], Stdio::null());
        let res = wait_within(child, 20, cond);
        assert_eq!(res.status.code(), Some(2), "{cond}");
        assert!(!out.exists(), "{cond}: nothing is written either");
        String::from_utf8_lossy(&res.stderr).into_owned()
    };
    let err = refuse("users_afected_pct > 2");
    assert!(err.contains("`users_afected_pct` is not a number in summary.json"), "{err}");
    assert!(err.contains("did you mean `users_affected_pct`?"), "{err}");
    for field in ["users_affected_pct", "revenue_lost.value", "sessions_affected", "failures_by_kind.KIND"] {
        assert!(err.contains(field), "the valid names are listed ({field}): {err}");
    }
    let err = refuse("failures_by_kind.sever_error >= 1");
    assert!(err.contains("`sever_error` is not a failure kind (did you mean `server_error`?)"), "{err}");
    // The kinds listed are pov-classify's.
    let kinds = pov::analyze::failure_kinds();
    assert!(kinds.len() >= 13 && kinds.contains(&"redirect_loop"), "{kinds:?}");
    for k in &kinds {
        assert!(err.contains(k), "{k} listed: {err}");
    }
    let err = refuse("lost_by_kind.slowness > 0");
    assert!(err.contains("`slowness` is not a failure kind"), "{err}");
    // A list or an object is not a number either.
    refuse("top_failing_pages > 1");
    refuse("revenue_lost > 1");

    // Every field the check accepts is a number in a real summary.json
    // (delta needs --history; a kind with no failure counts 0).
    let hist = d.path("hist");
    util::pov_ok(&["analyze", "--quiet", "--replays", "0", "--out", s(&hist.join("n1")), s(&sample())]);
    util::pov_ok(&["analyze", "--quiet", "--replays", "0", "--history", s(&hist), "--out", s(&out), s(&sample())]);
    let sm = summary(&out);
    let fields = pov::analyze::condition_fields();
    assert!(fields.iter().any(|f| f == "counters.tcp.connections"), "{fields:?}");
    for f in &fields {
        let mut at = &sm;
        let parts: Vec<&str> = f.split('.').collect();
        if parts.len() == 2 && (parts[0] == "failures_by_kind" || parts[0] == "lost_by_kind") {
            assert!(kinds.contains(&parts[1]), "{f}");
            continue;
        }
        for p in &parts {
            at = &at[*p];
        }
        assert!(at.is_number(), "{f} is {at} in summary.json");
    }
}

fn sample() -> std::path::PathBuf {
    util::root().join("samples/shop.pcap")
}

/// summary.json without its `inputs` (the paths as given differ).
fn summary_but_inputs(dir: &Path) -> serde_json::Value {
    let mut v = summary(dir);
    v.as_object_mut().unwrap().remove("inputs");
    v
}

#[test]
fn analyze_reads_stdin_and_named_pipes_like_the_file() {
    let d = TempDir::new("analyze-pipes");
    let bytes = std::fs::read(sample()).unwrap();
    // Masks are keyed per run unless `[privacy] mask_key` is set: set, the
    // runs' outputs can be compared byte for byte.
    let cfg = d.path("pov.toml");
    std::fs::write(&cfg, "[privacy]\nmask_key = \"pipes-test\"\n").unwrap();
    let from_file = d.path("file");
    util::pov_ok(&["analyze", "--quiet", "-c", s(&cfg), "--out", s(&from_file), s(&sample())]);
    let expected = tree(&from_file);
    assert_eq!(names_in(&from_file), OUTPUTS);
    assert_eq!(expected.keys().filter(|k| k.starts_with("replays/")).count(), 10);

    let from_stdin = d.path("stdin");
    let mut child = spawn_pov(&["analyze", "--quiet", "-c", s(&cfg), "--out", s(&from_stdin), "-"], Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    let data = bytes.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let res = wait_within(child, 60, "analyze from stdin");
    writer.join().unwrap().unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));

    let fifo = d.path("capture.pipe");
    mkfifo(&fifo);
    let from_fifo = d.path("fifo");
    let writer = feed_fifo(&fifo, bytes);
    let res = wait_within(
        spawn_pov(&["analyze", "--quiet", "-c", s(&cfg), "--out", s(&from_fifo), s(&fifo)], Stdio::null()),
        60,
        "fifo",
    );
    writer.join().unwrap().unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));

    for dir in [&from_stdin, &from_fifo] {
        assert_eq!(names_in(dir), OUTPUTS, "{}: no store, spill or staging folder left", dir.display());
        assert_eq!(summary_but_inputs(dir), summary_but_inputs(&from_file), "{}", dir.display());
        let got = tree(dir);
        for (name, data) in &expected {
            if name.ends_with(".parquet") || name.starts_with("replays/") {
                assert!(got.get(name) == Some(data), "{}: {name} differs from the file's", dir.display());
            }
        }
        assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    }
}

#[test]
fn the_replays_come_from_the_one_pass_over_the_captures() {
    // Two inputs: a.pcap, and a named pipe whose packets all come later.
    // Once pov has taken megabytes from the pipe, it has read a.pcap to its
    // end; a.pcap is then removed. The replays (of sessions in a.pcap, its
    // users are the affected ones) are written all the same: what they
    // show was kept while the captures were read.
    let d = TempDir::new("analyze-one-pass");
    let a = d.path("a.pcap");
    std::fs::copy(sample(), &a).unwrap();
    let later = synth_capture(&d, "8", "4000000000");
    assert!(later.len() > 3 << 20);
    let fifo = d.path("later.pipe");
    mkfifo(&fifo);
    let out = d.path("r");
    let child = spawn_pov(&["analyze", "--quiet", "--out", s(&out), s(&a), s(&fifo)], Stdio::null());
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(&later[..3 << 20]).unwrap();
    std::fs::remove_file(&a).unwrap();
    w.write_all(&later[3 << 20..]).unwrap();
    drop(w);
    let res = wait_within(child, 60, "analyze");
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
    let sm = summary(&out);
    assert_eq!(sm["users_total"].as_u64().unwrap(), 25 + 8);
    let replays = sm["replays"].as_object().unwrap();
    assert_eq!(replays.len(), 10, "{replays:?}");
    for path in replays.values() {
        let html = std::fs::read_to_string(out.join(path.as_str().unwrap())).unwrap();
        assert!(html.contains("\"entries\":[{"), "{path}: a replay with transactions");
    }
    assert_eq!(names_in(&out), OUTPUTS, "no store, spill or staging folder left");
}

/// Starts `pov analyze --out OUT INPUT`.
fn analyze_reading(out: &Path, input: &str, stdin: Stdio) -> std::process::Child {
    spawn_pov(&["analyze", "--quiet", "--out", s(out), input], stdin)
}

/// Writes `rest` from a thread and keeps the pipe open until the returned
/// sender is used: pov must stop between packets, not at the end of input.
fn keep_feeding(
    mut w: impl Write + Send + 'static,
    rest: Vec<u8>,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (close, closed) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let _ = w.write_all(&rest);
        let _ = closed.recv();
    });
    (close, t)
}

#[test]
fn sigint_and_sigterm_stop_analyze_with_nothing_written() {
    let d = TempDir::new("analyze-signals");
    let capture = synth_capture(&d, "8", "1793584800");
    let head = 2 << 20;

    // SIGINT, reading stdin (its transactions stored for the replays).
    let out = d.path("r-int");
    let mut child = analyze_reading(&out, "-", Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&capture[..head]).unwrap();
    // Mid-run: the staging folder holds the temporaries and the store.
    let staging = out.join(format!(".pov-run-{}", child.id()));
    let inside = names_in(&staging);
    assert!(inside.iter().any(|n| n.starts_with(".pov-store-")), "{inside:?}");
    assert!(inside.iter().any(|n| n.starts_with(".transactions.parquet.tmp.")), "{inside:?}");
    send_signal(child.id(), "INT");
    let (close, writer) = keep_feeding(stdin, capture[head..].to_vec());
    let res = wait_within(child, 30, "analyze after SIGINT");
    close.send(()).unwrap();
    writer.join().unwrap();
    assert_eq!(res.status.code(), Some(130));
    assert_eq!(String::from_utf8_lossy(&res.stderr), "pov: interrupted by SIGINT; nothing written\n");
    assert!(res.stdout.is_empty());
    assert!(!out.exists(), "the folder this run created is gone: {:?}", names_in(&out));

    // SIGINT, then the input ends in the middle of a record: the cut is not
    // reported (the run is abandoned), only the interruption.
    let out = d.path("r-cut");
    let mut child = analyze_reading(&out, "-", Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    let cut = head + 7;
    stdin.write_all(&capture[..cut]).unwrap();
    send_signal(child.id(), "INT");
    drop(stdin);
    let res = wait_within(child, 30, "analyze after SIGINT and a cut input");
    assert_eq!(res.status.code(), Some(130));
    assert_eq!(String::from_utf8_lossy(&res.stderr), "pov: interrupted by SIGINT; nothing written\n");
    assert!(!out.exists());

    // SIGTERM, reading a named pipe, over an earlier report: left as it was.
    let out = d.path("r-term");
    util::pov_ok(&["analyze", "--quiet", "--out", s(&out), s(&sample())]);
    let before = tree(&out);
    let fifo = d.path("capture.pipe");
    mkfifo(&fifo);
    let child = analyze_reading(&out, s(&fifo), Stdio::null());
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(&capture[..head]).unwrap();
    assert!(names_in(&out.join(format!(".pov-run-{}", child.id()))).iter().any(|n| n.starts_with(".pov-store-")));
    send_signal(child.id(), "TERM");
    let (close, writer) = keep_feeding(w, capture[head..].to_vec());
    let res = wait_within(child, 30, "analyze after SIGTERM");
    close.send(()).unwrap();
    writer.join().unwrap();
    assert_eq!(res.status.code(), Some(143));
    assert_eq!(String::from_utf8_lossy(&res.stderr), "pov: interrupted by SIGTERM; nothing written\n");
    assert_eq!(names_in(&out), OUTPUTS, "no temporary, store or staging folder left");
    assert!(tree(&out) == before, "the earlier report is untouched");
}

#[test]
fn a_full_disk_is_an_error_naming_the_file_and_leaves_the_folder_as_it_was() {
    let d = TempDir::new("analyze-full");
    let out = d.path("r");
    util::pov_ok(&["analyze", "--quiet", "--out", s(&out), s(&sample())]);
    let before = tree(&out);
    let size = |name: &str| before[name].len() as u64;
    let largest_replay = before.iter().filter(|(k, _)| k.starts_with("replays/")).map(|(_, v)| v.len() as u64).max();
    let largest_replay = largest_replay.unwrap();
    let parquet = pov::schema::files::RECORDS.iter().map(|f| size(f)).max().unwrap();
    // Sizes that make the file named fail first (each limit is rounded down
    // to whole ulimit units, so they keep a margin of 1 KB).
    assert!(parquet + 2048 < largest_replay && largest_replay + 2048 < size("report.html"), "sizes changed");
    let shop = sample();
    let cases = [
        // Parquet, through polars.
        (4096, "transactions.parquet"),
        // A replay (the report, larger, fails after it; the files of the
        // store the replays are read from, one per shard, each body once,
        // are smaller than the largest replay).
        (largest_replay - 1024, "replays/"),
        // report.html, once everything else fits.
        (largest_replay + 2048, "report.html"),
    ];
    for (limit, name) in cases {
        let res = pov_with_file_limit(limit, &["analyze", "--quiet", "--out", s(&out), s(&shop)]);
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{name}: {err}");
        let named = format!("{}/{name}", out.display());
        assert!(err.contains(&named) && err.contains("File too large"), "the error names {named}: {err}");
        assert_eq!(names_in(&out), OUTPUTS, "{name}: no temporary or staging folder left");
        assert!(tree(&out) == before, "{name}: no output replaced by a partial run");
    }

    // summary.json: made large by 300 earlier nights, with no replays.
    let hist = d.path("nights");
    for i in 0..300 {
        let night = hist.join(format!("n{i:03}"));
        std::fs::create_dir_all(&night).unwrap();
        let point = serde_json::json!({
            "capture_start": 1.7e9 + f64::from(i) * 86400.0, "users_total": 10, "users_affected": 1,
            "users_affected_pct": 10.0, "sessions_total": 12, "failures_by_kind": {"slow": 1},
            "revenue_realised": 1.0, "revenue_lost": {"value": 2.0}
        });
        std::fs::write(night.join("summary.json"), point.to_string()).unwrap();
    }
    let out = d.path("r-history");
    let local = util::root().join("samples/local-curl.pcap");
    let args = ["analyze", "--quiet", "--replays", "0", "--history", s(&hist), "--out", s(&out), s(&local)];
    util::pov_ok(&args);
    let big = tree(&out);
    let parquet = pov::schema::files::RECORDS.iter().map(|f| big[*f].len() as u64).max().unwrap();
    assert!(parquet + 2048 < big["summary.json"].len() as u64, "summary.json is the largest before report.html");
    let res = pov_with_file_limit(parquet + 2048, &args);
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{}/summary.json: File too large", out.display())), "{err}");
    assert!(tree(&out) == big, "summary.json: no output replaced by a partial run");
}

/// The same on a real full file system: a small tmpfs (root with mount
/// namespaces only; skipped otherwise, the ulimit test above always runs).
#[test]
fn a_full_tmpfs_is_an_error_and_leaves_no_file() {
    let d = TempDir::new("analyze-tmpfs");
    let mnt = d.path("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let script = "mount -t tmpfs -o size=256k pov-test \"$1\" || { echo NO-MOUNT; exit 0; }; \
                  \"$0\" analyze --quiet --out \"$1/r\" \"$2\" >/dev/null; echo \"rc=$?\"; \
                  ls -A \"$1\" \"$1/r\" 2>&1; true";
    let run = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", script, env!("CARGO_BIN_EXE_pov"), s(&mnt), s(&sample())])
        .output();
    let Ok(run) = run else {
        eprintln!("unshare not available: skipping the tmpfs test");
        return;
    };
    let said = String::from_utf8_lossy(&run.stdout);
    if !said.contains("rc=") {
        eprintln!("cannot mount a tmpfs here: skipping ({})", String::from_utf8_lossy(&run.stderr));
        return;
    }
    let err = String::from_utf8_lossy(&run.stderr);
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.first(), Some(&"rc=2"), "{said}\n{err}");
    assert!(err.contains(&format!("{}/r/", mnt.display())) && err.contains("No space left on device"), "{err}");
    // The folder this run created is gone; nothing else is on the tmpfs.
    assert!(lines.iter().any(|l| l.contains("No such file")), "{said}");
    assert!(!lines.iter().any(|l| l.contains("parquet") || l.contains(".pov-") || l.contains(".tmp.")), "{said}");
}

#[test]
fn a_second_run_into_the_same_folder_leaves_no_replay_of_the_first() {
    let d = TempDir::new("stale-replays");
    let out = d.path("out");
    let shop = util::root().join("samples/shop.pcap");
    let replays = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir.join("replays"))
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    util::pov_ok(&["analyze", "--quiet", "--replays", "5", "--out", s(&out), s(&shop)]);
    let first = replays(&out);
    assert_eq!(first.len(), 5, "{first:?}");
    // A file of the user's own in the folder stays.
    std::fs::write(out.join("replays/notes.txt"), "mine").unwrap();
    util::pov_ok(&["analyze", "--quiet", "--replays", "2", "--out", s(&out), s(&shop)]);
    let second = replays(&out);
    let linked: Vec<String> = summary(&out)["replays"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().trim_start_matches("replays/").to_string())
        .collect();
    assert_eq!(linked.len(), 2);
    let mut expected = linked.clone();
    expected.push("notes.txt".into());
    expected.sort();
    assert_eq!(second, expected, "only this run's replays (and the user's file)");
    util::pov_ok(&["analyze", "--quiet", "--replays", "0", "--out", s(&out), s(&shop)]);
    assert_eq!(replays(&out), ["notes.txt"]);
}
