//! Who is who behind shared addresses, and who is a robot, against the
//! generator's answer key: every transaction of the key is found in pov's
//! sessions (by client socket and position on its connection), so each
//! customer must be exactly one pov user, each pov user exactly one
//! customer, every failure on the right one, and no robot among them.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use pov::config::PovConfig;
use pov::users::{Outputs, UserStage, UserStageReport};
use pov_synth::{Profile, SynthConfig};

use crate::util::{self, TempDir, s};

/// A generated run: capture bytes and answer key.
fn generate(profile: Profile, users: u64, seed: u64) -> (Vec<u8>, serde_json::Value) {
    let mut cfg = SynthConfig { users, seed, body_scale: 0.1, ..SynthConfig::default() };
    profile.apply(&mut cfg);
    let (mut cap, mut key) = (Vec::new(), Vec::new());
    pov_synth::generate(&cfg, &mut cap, &mut key).expect("generating into memory");
    (cap, serde_json::from_slice(&key).expect("the key is JSON"))
}

/// What pov made of a session: its user, whether a robot's, its
/// transactions (client socket, position) and failed attempts (client
/// socket), and its noticed failures (client socket, position if any).
struct Seen {
    user: String,
    robot: Option<String>,
    txs: Vec<(String, u32)>,
    failed: Vec<String>,
    failures: Vec<(String, Option<u32>)>,
}

/// Runs the user stage over `cap` (raw keys), seeing every session written.
fn sessions(cap: &[u8], include_robots: bool) -> (Vec<Seen>, UserStageReport) {
    let file = pov_capture::pcap::CaptureFile::from_read("gen", std::io::Cursor::new(cap.to_vec())).expect("pcap");
    let cfg = PovConfig::default();
    let outputs = Outputs { users: None, sessions: None, pages: None, failures: None };
    let mut stage: UserStage<Vec<u8>> = UserStage::with_limits(&cfg, false, outputs, 100_000).expect("stage");
    stage.set_include_robots(include_robots);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = seen.clone();
    stage.set_tap(Box::new(move |s, c, user, _| {
        sink.borrow_mut().push(Seen {
            user: user.to_string(),
            robot: s.robot.as_ref().map(|r| r.rule.clone()),
            txs: s.txs.iter().map(|t| (t.client.to_string(), t.depth)).collect(),
            failed: s.failed.iter().map(|f| f.client.to_string()).collect(),
            failures: c
                .failures
                .iter()
                .filter(|f| f.severity.noticed())
                .filter_map(|f| Some((f.client?.to_string(), f.depth)))
                .collect(),
        });
    }));
    let pcfg = pov::pipeline::PipelineConfig::default();
    let threads = pov::parallel::Threads { threads: 1, shards: 2 };
    pov::parallel::run(vec![file], Vec::new(), &pcfg, Some(&pcfg.http), threads, None, &mut stage, &mut |_| {})
        .expect("running in memory");
    let (_, report) = stage.finish().expect("finishing");
    let seen = seen.take();
    (seen, report)
}

/// The key's owner of every transaction (client socket, position) and of
/// every failed attempt (client socket); and the robots' ids.
struct Owners {
    tx: HashMap<(String, u32), String>,
    attempt: HashMap<String, String>,
    robots: BTreeSet<String>,
    customers: BTreeSet<String>,
}

fn owners(key: &serde_json::Value) -> Owners {
    let mut o =
        Owners { tx: HashMap::new(), attempt: HashMap::new(), robots: BTreeSet::new(), customers: BTreeSet::new() };
    for u in key["users"].as_array().expect("users") {
        let id = u["user"].as_str().unwrap().to_string();
        if u["robot"].is_string() {
            o.robots.insert(id.clone());
        } else {
            o.customers.insert(id.clone());
        }
        for c in u["connections"].as_array().unwrap() {
            let client = c["client"].as_str().unwrap().to_string();
            if c["kind"] != "established" {
                o.attempt.insert(client.clone(), id.clone());
            }
            for t in c["transactions"].as_array().unwrap() {
                o.tx.insert((client.clone(), t["index"].as_u64().unwrap() as u32), id.clone());
            }
        }
    }
    o
}

/// Failed connection attempts that nothing on the wire can give to their
/// customer: another customer of the same address opened a connection
/// from 300 s before to 60 s after it (pov's join and retry windows), so
/// the next or last connection from the address may be theirs.
fn ambiguous_attempts(key: &serde_json::Value) -> BTreeSet<String> {
    let mut conns: Vec<(String, String, f64, f64, bool)> = Vec::new();
    for u in key["users"].as_array().unwrap() {
        for c in u["connections"].as_array().unwrap() {
            let client = c["client"].as_str().unwrap();
            let ip = client[..client.rfind(':').unwrap()].to_string();
            let (a, b) = (c["start"].as_f64().unwrap(), c["end"].as_f64().unwrap());
            conns.push((u["user"].as_str().unwrap().to_string(), ip, a, b, c["kind"] != "established"));
        }
    }
    let mut out = BTreeSet::new();
    for (who, ip, a, b, failed) in &conns {
        if !failed {
            continue;
        }
        let other = conns.iter().any(|(w, i, s, _, f)| !f && w != who && i == ip && *s >= a - 300.0 && *s <= b + 60.0);
        if other {
            // (Attempts are keyed by client socket.)
            for u in key["users"].as_array().unwrap().iter().filter(|u| u["user"] == who.as_str()) {
                for c in u["connections"].as_array().unwrap() {
                    if c["kind"] != "established" && (c["start"].as_f64().unwrap() - a).abs() < 1e-9 {
                        out.insert(c["client"].as_str().unwrap().to_string());
                    }
                }
            }
        }
    }
    out
}

/// Checks that pov's users are the key's customers one to one, and that
/// every noticed failure is on its customer's user. Returns (customers
/// judged, attempts left out as ambiguous, problems).
fn one_to_one(seen: &[Seen], key: &serde_json::Value) -> (usize, usize, Vec<String>) {
    let o = owners(key);
    let ambiguous = ambiguous_attempts(key);
    let mut problems = Vec::new();
    // pov user -> customers; customer -> pov users.
    let mut of_user: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut of_customer: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in seen {
        let mut owners_here: Vec<&str> = s.txs.iter().filter_map(|t| o.tx.get(t)).map(String::as_str).collect();
        owners_here.extend(
            s.failed.iter().filter(|c| !ambiguous.contains(*c)).filter_map(|c| o.attempt.get(c)).map(String::as_str),
        );
        if s.txs.iter().any(|t| !o.tx.contains_key(t)) {
            problems.push(format!("{}: a transaction the key does not have", s.user));
        }
        for w in owners_here {
            of_user.entry(s.user.as_str()).or_default().insert(w);
            of_customer.entry(w).or_default().insert(s.user.as_str());
        }
    }
    for (u, ws) in &of_user {
        if ws.len() != 1 {
            problems.push(format!("pov user {u} holds customers {ws:?}"));
        }
    }
    for (w, us) in &of_customer {
        if us.len() != 1 {
            problems.push(format!("customer {w} split over pov users {us:?}"));
        }
    }
    for c in &o.customers {
        let has_traffic = o.tx.values().any(|w| w == c);
        if has_traffic && !of_customer.contains_key(c.as_str()) {
            problems.push(format!("customer {c} not found"));
        }
    }
    // Failures: on the user of the customer whose request (or attempt) it
    // was.
    for s in seen {
        for (client, depth) in &s.failures {
            let owner = match depth {
                Some(d) => o.tx.get(&(client.clone(), *d)),
                None if ambiguous.contains(client) => continue,
                None => o.attempt.get(client),
            };
            let Some(owner) = owner else { continue };
            let users = of_customer.get(owner.as_str());
            if users.is_none_or(|us| !us.contains(s.user.as_str())) {
                problems.push(format!("a failure of {owner} ({client} #{depth:?}) counted for {}", s.user));
            }
        }
    }
    (of_customer.len(), ambiguous.len(), problems)
}

#[test]
fn customers_behind_shared_addresses_are_each_their_own_user() {
    for seed in [3, 4] {
        let (cap, key) = generate(Profile::Shared, 200, seed);
        let users = key["users"].as_array().unwrap();
        // The profile's shape: a few addresses, one User-Agent, some with an
        // analytics cookie and some without.
        let ips: BTreeSet<&str> = users.iter().map(|u| u["client_ip"].as_str().unwrap()).collect();
        let agents: BTreeSet<&str> = users.iter().map(|u| u["user_agent"].as_str().unwrap()).collect();
        let with_ga = users.iter().filter(|u| u["analytics_cookie"].is_string()).count();
        assert!(ips.len() <= 6 && agents.len() == 1, "{ips:?} {agents:?}");
        assert!(with_ga > 40 && with_ga < 180, "{with_ga} with an analytics cookie");
        let (seen, report) = sessions(&cap, false);
        let (judged, ambiguous, problems) = one_to_one(&seen, &key);
        assert!(problems.is_empty(), "seed {seed}: {problems:#?}");
        assert_eq!(judged, 200, "seed {seed}: customers found");
        assert_eq!(report.users, 200, "seed {seed}: pov users");
        assert_eq!(report.robots.users, 0, "seed {seed}: no robots");
        assert!(ambiguous <= 5, "seed {seed}: {ambiguous} ambiguous attempts");
        // Customers with failures, each counted once on their own user.
        let affected = users.iter().filter(|u| u["affected"] == true).count();
        assert!(affected > 20, "seed {seed}: only {affected} affected customers");
        // Pairs of customers of one address whose first visits came within
        // the retry window (60 s) of each other: what was merged before.
        let mut close = 0;
        for (i, a) in users.iter().enumerate() {
            for b in &users[i + 1..] {
                let gap = (b["arrival"].as_f64().unwrap() - a["arrival"].as_f64().unwrap()).abs();
                close += usize::from(a["client_ip"] == b["client_ip"] && gap < 60.0);
            }
        }
        assert!(close >= 5, "seed {seed}: only {close} close pairs, the profile does not test the rules");
        eprintln!(
            "seed {seed}: {judged} customers found as {} users, {with_ga} with _ga, {close} close pairs, {ambiguous} ambiguous attempts, {affected} affected; {:?}",
            report.users, report.sessions
        );
        // The new rules did the work: persistent cookies told users apart.
        let st = &report.sessions;
        assert!(st.births_tied_by_connection + st.births_tied_by_cookie > 0, "{st:?}");
    }
}

#[test]
fn robots_are_found_and_kept_apart_and_customers_still_found() {
    let (cap, key) = generate(Profile::Robots, 300, 5);
    let o = owners(&key);
    assert_eq!(o.robots.len(), 2);
    // Every session, robots included: each robot's requests in robots'
    // sessions only, each customer's in customers' only.
    let (all, report_all) = sessions(&cap, true);
    let mut problems = Vec::new();
    for s in &all {
        for t in &s.txs {
            let Some(w) = o.tx.get(t) else { continue };
            match (o.robots.contains(w), &s.robot) {
                (true, None) => problems.push(format!("robot {w}'s request {t:?} in customer session of {}", s.user)),
                (false, Some(r)) => problems.push(format!("customer {w}'s request {t:?} in a robot session ({r})")),
                _ => {}
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    let robot_rules: BTreeSet<&str> = all.iter().filter_map(|s| s.robot.as_deref()).collect();
    assert!(robot_rules.contains("user_agent") && robot_rules.contains("identities"), "{robot_rules:?}");
    // By default: not one robot among the users, every customer found.
    let (seen, report) = sessions(&cap, false);
    assert!(seen.iter().all(|s| s.robot.is_none()));
    let robot_txs = seen.iter().flat_map(|s| &s.txs).filter(|t| o.tx.get(*t).is_some_and(|w| o.robots.contains(w)));
    assert_eq!(robot_txs.count(), 0);
    let (judged, _, problems) = one_to_one(&seen, &key);
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(judged, 300);
    assert_eq!(report.users, 300, "users: the customers only");
    // The robots, reported apart: both clients, with their evidence.
    let r = &report.robots;
    assert!(!r.included);
    let clients: BTreeMap<&str, &pov::users::RobotClient> =
        r.clients.iter().map(|c| (c.client_ip.as_deref().unwrap_or(""), c)).collect();
    let load = clients.get("198.51.100.10").expect("the load generator");
    assert_eq!(load.rule, "identities");
    assert!(load.users >= 150, "{} identities", load.users);
    let crawler = clients.get("198.51.100.100").expect("the crawler");
    assert_eq!(crawler.rule, "user_agent");
    assert!(crawler.evidence.contains("googlebot"), "{}", crawler.evidence);
    let robot_requests: usize = key["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["robot"].is_string())
        .flat_map(|u| u["connections"].as_array().unwrap())
        .map(|c| c["transactions"].as_array().unwrap().len())
        .sum();
    assert_eq!(r.requests as usize, robot_requests, "every robot request counted");
    // With --include-robots they are users again.
    assert_eq!(report_all.users, 300 + r.users);
    assert!(report_all.robots.included);
}

#[test]
fn include_robots_brings_them_back_on_the_command_line() {
    let d = TempDir::new("identity-robots");
    let (pcap, key) = (d.path("r.pcap"), d.path("r.json"));
    util::synth(
        &["--users", "60", "--seed", "9", "--profile", "robots", "--load-identities", "40", "--body-scale", "0.05"],
        &pcap,
        &key,
    );
    let count = |extra: &[&str]| {
        let mut args = vec!["users", "--format", "jsonl", "--quiet", s(&pcap)];
        args.extend_from_slice(extra);
        util::pov_ok(&args).lines().count()
    };
    let (without, with) = (count(&[]), count(&["--include-robots"]));
    assert_eq!(without, 60);
    assert!(with > 60 + 30, "{with} users with the robots");
    let out = d.path("out");
    util::pov_ok(&["analyze", s(&pcap), "--out", s(&out), "--replays", "0", "--quiet"]);
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["users_total"], 60);
    assert_eq!(summary["robots"]["included"], false);
    assert!(summary["robots"]["users"].as_u64().unwrap() > 30);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Robots and load generators") && html.contains("198.51.100.10"));
    util::pov_ok(&["analyze", s(&pcap), "--out", s(&out), "--replays", "0", "--quiet", "--include-robots"]);
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["users_total"].as_u64().unwrap(), 60 + summary["robots"]["users"].as_u64().unwrap());
    assert_eq!(summary["robots"]["included"], true);
}
