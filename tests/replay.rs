//! `pov replay har`: the HAR of the failed sessions holds every transaction
//! of the affected users, as the answer key has them.

use std::collections::BTreeMap;

use crate::util::{self, TempDir, s};

#[test]
fn har_of_failed_sessions_matches_the_key() {
    let d = TempDir::new("replay-har");
    let har = d.path("failed.har");
    let root = util::root();
    util::pov_ok(&["replay", "har", "--quiet", "--failed", "-o", s(&har), s(&root.join("samples/shop.pcap"))]);
    let h: serde_json::Value = serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap();
    let log = &h["log"];
    assert_eq!(log["version"], "1.2");
    assert_eq!(log["creator"]["name"], "pov");
    let key: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("samples/shop.truth.json")).unwrap()).unwrap();
    let mut want: BTreeMap<(String, String, u64), u32> = BTreeMap::new();
    for u in key["users"].as_array().unwrap().iter().filter(|u| u["affected"] == true) {
        for c in u["connections"].as_array().unwrap() {
            for t in c["transactions"].as_array().unwrap() {
                let k = (
                    t["method"].as_str().unwrap().into(),
                    t["uri"].as_str().unwrap().into(),
                    t["status"].as_u64().unwrap_or(0),
                );
                *want.entry(k).or_default() += 1;
            }
        }
    }
    let mut got: BTreeMap<(String, String, u64), u32> = BTreeMap::new();
    let pages: Vec<&str> = log["pages"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    for e in log["entries"].as_array().unwrap() {
        let url = e["request"]["url"].as_str().unwrap();
        let path = url.strip_prefix("http://shop.example.com").unwrap_or(url);
        let k =
            (e["request"]["method"].as_str().unwrap().into(), path.into(), e["response"]["status"].as_u64().unwrap());
        *got.entry(k).or_default() += 1;
        // Every entry names a page of the file, and has every timing.
        if let Some(p) = e["pageref"].as_str() {
            assert!(pages.contains(&p), "{p}");
        }
        for t in ["blocked", "dns", "connect", "send", "wait", "receive"] {
            assert!(e["timings"][t].is_number(), "{t}");
        }
        // Cookies and card numbers are masked.
        for c in e["request"]["cookies"].as_array().unwrap() {
            assert_eq!(c["value"], "***");
        }
        assert!(!e.to_string().contains("4111111111111111"));
    }
    assert_eq!(got, want);
    assert_eq!(got.values().sum::<u32>(), 419);
    // Timings from the wire, against the key: send, wait (time to first
    // byte) and receive, to the microsecond.
    let mut key_times: BTreeMap<String, Vec<(f64, f64, f64, f64)>> = BTreeMap::new();
    for u in key["users"].as_array().unwrap().iter().filter(|u| u["affected"] == true) {
        for c in u["connections"].as_array().unwrap() {
            for t in c["transactions"].as_array().unwrap() {
                let f = |k: &str| t[k].as_f64().unwrap_or(f64::NAN);
                key_times.entry(t["uri"].as_str().unwrap().to_string()).or_default().push((
                    f("req_start"),
                    f("req_end"),
                    f("resp_start"),
                    f("resp_end"),
                ));
            }
        }
    }
    let mut compared = 0;
    for e in log["entries"].as_array().unwrap() {
        let url = e["request"]["url"].as_str().unwrap();
        let path = url.strip_prefix("http://shop.example.com").unwrap_or(url).to_string();
        let start = e["_startedEpoch"].as_f64().unwrap();
        // The same request in the key: same URI, same start (to 10 µs;
        // both sides print seconds as floats).
        let Some(&(rs, re, ps, pe)) = key_times.get(&path).and_then(|v| v.iter().find(|k| (k.0 - start).abs() < 1e-5))
        else {
            continue;
        };
        let tm = &e["timings"];
        let close = |got: &serde_json::Value, want: f64| {
            let g = got.as_f64().unwrap();
            if want.is_nan() { g == -1.0 } else { (g - want * 1e3).abs() < 0.002 }
        };
        assert!(close(&tm["send"], re - rs), "{path} send {} vs {}", tm["send"], (re - rs) * 1e3);
        assert!(close(&tm["wait"], ps - re), "{path} wait {} vs {}", tm["wait"], (ps - re) * 1e3);
        // (A response cut short never finished: its receive time is -1.)
        if e["_outcome"] == "complete" {
            assert!(close(&tm["receive"], pe - ps), "{path} receive {} vs {}", tm["receive"], (pe - ps) * 1e3);
        }
        compared += 1;
    }
    assert!(compared > 400, "only {compared} entries matched the key by URI and start");
    // Valid against the HAR 1.2 JSON Schema (the npm har-schema package,
    // in tests/har-schema, ISC licence), with a JSON Schema crate.
    let dir = root.join("tests/har-schema");
    let mut opts = jsonschema::options().with_base_uri("http://har.invalid/");
    let mut top = None;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if name == "har.json" {
            top = Some(v.clone());
        }
        opts =
            opts.with_resource(format!("http://har.invalid/{name}"), jsonschema::Resource::from_contents(v).unwrap());
    }
    let validator = opts.build(&top.expect("har.json")).expect("the HAR schema compiles");
    let errors: Vec<String> =
        validator.iter_errors(&h).take(10).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // And the schema does catch a broken HAR.
    let mut broken = h.clone();
    broken["log"]["entries"][0]["request"].as_object_mut().unwrap().remove("method");
    assert!(!validator.is_valid(&broken));
}

/// Every `pov failures` record of one kind, as JSON.
fn failures_of(pcap: &std::path::Path, kind: &str) -> Vec<serde_json::Value> {
    util::pov_ok(&["failures", "--quiet", "--format", "jsonl", s(pcap)])
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|f| f["kind"] == kind)
        .collect()
}

fn attr<'a>(html: &'a str, tag_start: &str, name: &str) -> Option<&'a str> {
    let t = html.find(tag_start)?;
    let tag = &html[t..t + html[t..].find('>')?];
    let v = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(&tag[v..v + tag[v..].find('"')?])
}

#[test]
fn html_replay_of_an_error_page_session_shows_the_captured_error_page() {
    if !util::have("chromium") {
        return;
    }
    let d = TempDir::new("replay-html");
    let root = util::root();
    let pcap = root.join("samples/shop.pcap");
    let key: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("samples/shop.truth.json")).unwrap()).unwrap();
    let error_text = key["config"]["error_text"].as_str().unwrap();
    let key_error_pages = key["users"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| u["connections"].as_array().unwrap())
        .flat_map(|c| c["transactions"].as_array().unwrap())
        .filter(|t| t["error_page"] == true)
        .count();
    let errors = failures_of(&pcap, "error_page");
    assert_eq!(errors.len(), key_error_pages);
    let pages = util::pov_ok(&["pages", "--quiet", "--format", "jsonl", s(&pcap)]);
    for (n, f) in errors.iter().enumerate() {
        let sid = f["session"].as_str().unwrap();
        let page = f["page"].as_u64().unwrap();
        let html = d.path(&format!("session{n}.html"));
        util::pov_ok(&["replay", "html", "--quiet", "--session", sid, "-o", s(&html), s(&pcap)]);
        let (console, dom, png) = util::in_chromium(&html, &d.path(&format!("chromium{n}")), "1280,1400");
        // It ran: no console message at all (no error, no blocked script,
        // no refused load), one row per page view of the session, and the
        // page with the failure shown first.
        assert!(console.is_empty(), "{console:?}");
        assert_eq!(attr(&dom, "<body", "data-ready"), Some("1"));
        let views = pages.lines().filter(|l| l.contains(&format!("\"session\":\"{sid}\""))).count();
        assert_eq!(dom.matches("<div class=\"row").count(), views, "{sid}");
        assert_eq!(attr(&dom, "<body", "data-page"), Some((page - 1).to_string().as_str()));
        assert!(dom.contains("error_page</b> (critical, rule error_page:"), "failure not highlighted");
        // The frame holds the captured page: the error text, no script.
        let doc = util::unescape_attr(attr(&dom, "<iframe", "srcdoc").expect("the frame has a document"));
        assert!(doc.contains(error_text), "{doc}");
        assert!(!doc.to_ascii_lowercase().contains("<script"));
        assert!(doc.contains("data:image/png;base64,"), "the captured logo is not in place");
        // The screenshot shows that page: the frame's area is pixel for
        // pixel what Chromium draws for the captured document on its own
        // (a blank frame would miss the ~1 % the text covers).
        let rect: Vec<usize> =
            attr(&dom, "<body", "data-frame").unwrap().split(',').map(|x| x.parse().unwrap()).collect();
        let (x0, y0, w, h) = (rect[0], rect[1], rect[2], rect[3]);
        let alone = d.path(&format!("alone{n}.html"));
        std::fs::write(&alone, &doc).unwrap();
        let (console, _, alone_png) = util::in_chromium(&alone, &d.path(&format!("alone{n}")), &format!("{w},{h}"));
        assert!(console.is_empty(), "{console:?}");
        let (sw, sh, shot) = util::png_rgba(&png);
        let (aw, ah, solo) = util::png_rgba(&alone_png);
        assert!(x0 + w <= sw && y0 + h <= sh && (aw, ah) == (w, h), "frame {rect:?} in {sw}x{sh}, alone {aw}x{ah}");
        let (mut same, mut inked) = (0, 0);
        for y in 0..h {
            for x in 0..w {
                let a = &shot[((y0 + y) * sw + x0 + x) * 4..][..4];
                let b = &solo[(y * w + x) * 4..][..4];
                same += usize::from(a == b);
                inked += usize::from(a[..3].iter().any(|c| *c < 128));
            }
        }
        assert!(same * 10_000 >= w * h * 9_990, "only {same} of {} pixels match the page drawn alone", w * h);
        // And the page is drawn, not blank: text covers some of it.
        assert!(inked > 2_000, "{inked} dark pixels");
    }
}

#[test]
fn html_replay_of_failed_sessions_masks_secrets() {
    let d = TempDir::new("replay-html-mask");
    let root = util::root();
    let html = d.path("failed.html");
    util::pov_ok(&["replay", "html", "--quiet", "--failed", "-o", s(&html), s(&root.join("samples/shop.pcap"))]);
    let page = std::fs::read_to_string(&html).unwrap();
    let key: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("samples/shop.truth.json")).unwrap()).unwrap();
    let cookies: Vec<&str> = key["users"].as_array().unwrap().iter().filter_map(|u| u["cookie"].as_str()).collect();
    assert!(cookies.len() > 10);
    for c in cookies {
        assert!(!page.contains(c), "cookie {c} in the replay");
    }
    assert!(!page.contains("4111111111111111") && !page.contains("4111 1111"));
    // The data the page carries: 15 sessions, each of its pages with a
    // document or a reason, and each failure on a page of its session.
    let data = page.split("<script type=\"application/json\" id=\"data\">").nth(1).unwrap();
    let data: serde_json::Value = serde_json::from_str(&data[..data.find("</script>").unwrap()]).unwrap();
    let sessions = data["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 15);
    let pages: usize = sessions.iter().map(|s| s["pages"].as_array().unwrap().len()).sum();
    let entries: usize = sessions.iter().map(|s| s["entries"].as_array().unwrap().len()).sum();
    assert_eq!((pages, entries), (85, 419));
    for s in sessions {
        let n = s["pages"].as_array().unwrap().len() as u64;
        for f in s["failures"].as_array().unwrap() {
            assert!(f["page"].as_u64().is_none_or(|p| p < n), "{f}");
        }
    }
    // Resources are stored once: fewer than the entries that fetched them.
    assert!(data["res"].as_array().unwrap().len() < entries / 2);
}
