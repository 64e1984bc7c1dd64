//! BPF filters on packets read from files, compiled by libpcap.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use pcap::{BpfProgram, Capture};

use crate::packet::{Linktype, Packet};
use crate::source::PacketFilter;

/// A BPF expression that does not compile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    /// The expression.
    pub expr: String,
    /// libpcap's message.
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the filter '{}' does not compile: {}", self.expr, self.message)
    }
}

impl std::error::Error for FilterError {}

/// A BPF expression applied to each packet pov reads, with the meaning
/// `tcpdump -r FILE EXPR` gives it: libpcap compiles it (with
/// optimisation, netmask unknown) for the packet's link type and runs it
/// on the captured bytes.
///
/// It is compiled once per link type met (a pcapng file or several inputs
/// may mix them; tcpdump would refuse such a mix). A link type the
/// expression cannot be compiled for (`ether host` on raw IP) matches no
/// packet, and is counted in [`BpfFilter::uncompilable`].
///
/// One difference with tcpdump: the packet's length seen by the program
/// (`len`, `greater`, `less`) is its captured length, not its length on
/// the wire (libpcap's `pcap_offline_filter`, as the `pcap` crate calls
/// it, is given only the captured bytes); the two differ only for frames
/// cut by the snapshot length.
pub struct BpfFilter {
    expr: String,
    /// Per link type: the program, or `None` when it does not compile
    /// for it. Only the reader task uses it (the lock is never contended).
    programs: Mutex<HashMap<u32, Option<BpfProgram>>>,
    uncompilable: Mutex<Vec<(Linktype, String)>>,
}

impl fmt::Debug for BpfFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BpfFilter").field("expr", &self.expr).finish()
    }
}

/// Compiles `expr` for `linktype`.
fn compile(expr: &str, linktype: Linktype) -> Result<BpfProgram, String> {
    let lt = pcap::Linktype(i32::try_from(linktype.0).map_err(|_| format!("link type {} out of range", linktype.0))?);
    let dead = Capture::dead(lt).map_err(|e| e.to_string())?;
    dead.compile(expr, true).map_err(|e| e.to_string())
}

impl BpfFilter {
    /// Checks `expr` (it must compile for Ethernet, Linux cooked capture
    /// or raw IP) and keeps it.
    ///
    /// # Errors
    ///
    /// It compiles for none of them: libpcap's message (for Ethernet).
    pub fn new(expr: &str) -> Result<BpfFilter, FilterError> {
        let mut programs = HashMap::new();
        let mut first_error = None;
        for lt in [Linktype::ETHERNET, Linktype::LINUX_SLL2, Linktype::RAW] {
            match compile(expr, lt) {
                Ok(p) => {
                    programs.insert(lt.0, Some(p));
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if programs.is_empty() {
            return Err(FilterError { expr: expr.to_string(), message: first_error.unwrap_or_default() });
        }
        Ok(BpfFilter { expr: expr.to_string(), programs: Mutex::new(programs), uncompilable: Mutex::new(Vec::new()) })
    }

    /// The expression.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// Link types met that the expression does not compile for (their
    /// packets matched nothing), with libpcap's message.
    pub fn uncompilable(&self) -> Vec<(Linktype, String)> {
        self.uncompilable.lock().map(|u| u.clone()).unwrap_or_default()
    }
}

impl PacketFilter for BpfFilter {
    fn matches(&self, pkt: &Packet<'_>) -> bool {
        let Ok(mut programs) = self.programs.lock() else { return false };
        let prog = programs.entry(pkt.linktype.0).or_insert_with(|| match compile(&self.expr, pkt.linktype) {
            Ok(p) => Some(p),
            Err(e) => {
                if let Ok(mut u) = self.uncompilable.lock() {
                    u.push((pkt.linktype, e));
                }
                None
            }
        });
        prog.as_ref().is_some_and(|p| p.filter(pkt.data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::{CaptureFile, PacketReader};
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn sample(name: &str) -> PathBuf {
        crate::testing::manifest_dir().join("../../samples").join(name)
    }

    /// (time in microseconds, as tcpdump writes it; bytes) of every frame
    /// of `path` that `keep` accepts.
    fn frames(path: &Path, keep: &dyn Fn(&Packet<'_>) -> bool) -> Vec<(i64, Vec<u8>)> {
        let mut r = PacketReader::new(vec![CaptureFile::open(path).unwrap()]);
        let mut out = Vec::new();
        while let Some(p) = r.next_packet().unwrap() {
            if keep(&p) {
                out.push((p.ts.0.div_euclid(1000), p.data.to_vec()));
            }
        }
        out
    }

    #[test]
    fn a_filter_keeps_what_tcpdump_keeps() {
        let have = Command::new("tcpdump").arg("--version").output().is_ok_and(|o| o.status.success());
        assert!(have || std::env::var_os("CI").is_none(), "tcpdump is not installed (.ci/run installs it)");
        if !have {
            eprintln!("tcpdump not installed: skipping (CI installs it)");
            return;
        }
        let out = std::env::temp_dir().join(format!("pov-bpf-{}.pcap", std::process::id()));
        let cases: &[(&str, &str, usize)] = &[
            ("shop.pcap", "host 198.18.0.7", 130),
            ("shop.pcap", "ip6", 532),
            ("shop.pcap", "tcp[tcpflags] & tcp-syn != 0 and not host 198.18.0.9", 378),
            ("shop-lossy.pcapng", "tcp dst port 80 and tcp[tcpflags] & tcp-push != 0", 578),
            ("local-curl.pcap", "tcp port 18080 and greater 100", 30),
            ("local-curl.pcap", "udp", 0),
        ];
        for &(name, expr, want) in cases {
            let f = BpfFilter::new(expr).unwrap();
            let ours = frames(&sample(name), &|p| f.matches(p));
            let st = Command::new("tcpdump")
                .args(["-r"])
                .arg(sample(name))
                .args(["-w"])
                .arg(&out)
                .arg(expr)
                .output()
                .unwrap();
            assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
            let theirs = frames(&out, &|_| true);
            assert_eq!(ours.len(), theirs.len(), "{name} '{expr}'");
            assert!(ours == theirs, "{name} '{expr}': other frames");
            assert_eq!(ours.len(), want, "{name} '{expr}'");
            let all = frames(&sample(name), &|_| true).len();
            assert!(ours.len() < all, "{name} '{expr}' kept every frame");
        }
        let _ = std::fs::remove_file(&out);
    }

    #[test]
    fn a_bad_expression_says_why() {
        let e = BpfFilter::new("tcp prot 80").unwrap_err();
        assert_eq!(e.expr, "tcp prot 80");
        assert!(e.to_string().starts_with("the filter 'tcp prot 80' does not compile: "), "{e}");
        assert!(e.message.contains("syntax error"), "{e}");
    }

    #[test]
    fn a_link_type_the_expression_cannot_fit_matches_nothing() {
        // `ether host` has no meaning on raw IP.
        let f = BpfFilter::new("ether host 00:11:22:33:44:55").unwrap();
        let p =
            Packet { frame: 1, source: 0, ts: crate::Ts(0), linktype: Linktype::IPV4, data: &[0x45; 40], orig_len: 40 };
        assert!(!f.matches(&p));
        assert_eq!(f.uncompilable().len(), 1);
        assert_eq!(f.uncompilable()[0].0, Linktype::IPV4);
    }
}
