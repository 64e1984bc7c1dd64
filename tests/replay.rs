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
