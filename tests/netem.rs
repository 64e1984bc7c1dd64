//! Real kernel TCP with packet loss (benches/netem/run.sh): every user's
//! failures as pov reports them equal the faults the run caused. Needs
//! root (network namespaces), nft, tc, tcpdump, python3 and curl, so it is
//! ignored by default:
//!
//! ```sh
//! cargo test --release --test integration -- --ignored netem --nocapture
//! ```

use crate::util::{self, TempDir};

#[test]
#[ignore = "needs root, nft, tcpdump, python3 and curl; run with --ignored"]
fn netem_users_match_the_faults_caused() {
    for loss in ["2", "10"] {
        let d = TempDir::new(&format!("netem-{loss}"));
        let out = std::process::Command::new("sh")
            .arg(util::root().join("benches/netem/run.sh"))
            .arg("80")
            .arg(&d.0)
            .arg(env!("CARGO_BIN_EXE_pov"))
            .env("LOSS", loss)
            .output()
            .expect("run benches/netem/run.sh");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!("loss {loss} %:\n{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success());
        // users with exactly the faults caused: N of M
        let line = text.lines().find(|l| l.starts_with("users with exactly")).expect("a verdict");
        let nums: Vec<u64> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
        assert_eq!(nums[0], nums[1], "{line}");
        assert!(nums[1] >= 100, "{line}");
        // transactions: pov X, requests the server read Y, plus Z lost in the race
        let line = text.lines().find(|l| l.starts_with("transactions:")).expect("a count");
        let nums: Vec<u64> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
        assert_eq!(nums[0], nums[1] + nums[2], "{line}");
    }
}
