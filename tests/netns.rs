//! A network namespace for recording real traffic: the namespace, the
//! processes started in it and a temporary directory, removed on drop;
//! tcpdump started and stopped so that the capture is whole. Shared by the
//! end-to-end tests and crates/tls/tests/real_traffic.rs (`#[path]`), each
//! of which uses part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether this machine can record: root and every tool of `tools`.
/// Without them the test says so and skips; under CI (which has them) it
/// fails instead.
pub fn can_record(what: &str, tools: &[&str]) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|st| st.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false);
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !Command::new("sh").args(["-c", &format!("command -v {t}")]).output().is_ok_and(|o| o.status.success())
        })
        .collect();
    let ok = root && missing.is_empty();
    assert!(ok || std::env::var_os("CI").is_none(), "{what} needs root ({root}) and {missing:?}; CI has them");
    if !ok {
        eprintln!("{what} needs root ({root}) and {missing:?}: skipping");
    }
    ok
}

/// Runs `cmd`, asserting success.
pub fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("run a command");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The namespace, its processes and the temporary directory.
pub struct Lab {
    /// Namespace name.
    pub ns: String,
    /// Temporary directory.
    pub dir: PathBuf,
    children: Vec<Child>,
}

impl Lab {
    /// A namespace with its loopback up, and an empty directory.
    pub fn new(name: &str) -> Lab {
        let id = std::process::id();
        let dir = std::env::temp_dir().join(format!("pov-{name}-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let lab = Lab { ns: format!("pov{name}{id}"), dir, children: Vec::new() };
        run(Command::new("ip").args(["netns", "add", &lab.ns]));
        run(Command::new("ip").args(["-n", &lab.ns, "link", "set", "lo", "up"]));
        lab
    }

    /// A command run inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).args(args);
        c
    }

    /// A self-signed RSA certificate for `pov.test` in the directory:
    /// `cert.pem` and `key.pem`.
    pub fn self_signed(&self) {
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=pov.test"])
            .arg("-keyout")
            .arg(self.path("key.pem"))
            .arg("-out")
            .arg(self.path("cert.pem")));
    }

    /// A path in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The directory as text.
    pub fn d(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }

    /// Starts `args` in the namespace (stopped on drop).
    pub fn spawn(&mut self, args: &[&str]) {
        let child = self.exec(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
        self.children.push(child);
    }

    /// Waits until something listens on 127.0.0.1:`port` in the namespace.
    pub fn wait_port(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let probe = format!("exec 3<>/dev/tcp/127.0.0.1/{port}");
        while !self.exec(&["bash", "-c", &probe]).stderr(Stdio::null()).status().is_ok_and(|s| s.success()) {
            assert!(Instant::now() < deadline, "nothing listens on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts tcpdump on the loopback into `file` with `filter`, once it
    /// captures (its messages go to `file`.log: a pipe it could write to
    /// after the reader is gone would kill it).
    pub fn tcpdump(&self, file: &str, filter: &str) -> Capture {
        let pcap = self.path(file);
        let log = self.path(&format!("{file}.log"));
        let child = self
            .exec(&["tcpdump", "-i", "lo", "--immediate-mode", "-B", "65536", "-U", "-s", "0", "-w"])
            .arg(&pcap)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("tcpdump log"))
            .spawn()
            .expect("tcpdump");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("listening on") {
            assert!(Instant::now() < deadline, "tcpdump did not start: {:?}", std::fs::read_to_string(&log));
            std::thread::sleep(Duration::from_millis(20));
        }
        Capture { child: Some(child), pcap }
    }
}

/// A running tcpdump (stopped on drop too).
pub struct Capture {
    child: Option<Child>,
    /// The file it writes.
    pub pcap: PathBuf,
}

impl Capture {
    /// Lets the last packets reach the file, stops tcpdump, and returns
    /// the file.
    pub fn stop(mut self) -> PathBuf {
        std::thread::sleep(Duration::from_millis(300));
        self.end();
        self.pcap.clone()
    }

    fn end(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.end();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        // POV_KEEP_LAB=1 keeps the files, to look at a failure.
        if std::env::var_os("POV_KEEP_LAB").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// An Apache configuration (Debian's modules) serving `dir`/www on
/// 127.0.0.1:`port` with mod_http2 offering h2c by Upgrade, which nginx
/// does not; run as `apache2 -X -f` in a namespace. Its worker runs as
/// nobody, so `dir` and `dir`/www must be readable by all.
pub fn apache_h2c_conf(dir: &std::path::Path, port: u16) -> String {
    format!(
        "ServerRoot {d}\nServerName localhost\n\
         LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n\
         LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so\n\
         LoadModule http2_module {m}\n\
         Listen 127.0.0.1:{port}\nPidFile {d}/httpd.pid\nErrorLog {d}/error.log\nDocumentRoot {d}/www\n\
         User nobody\nGroup nogroup\nProtocols h2c http/1.1\n\
         <Directory {d}/www>\n  Require all granted\n</Directory>\n",
        d = dir.display(),
        m = APACHE_HTTP2,
    )
}

/// Debian's mod_http2.
pub const APACHE_HTTP2: &str = "/usr/lib/apache2/modules/mod_http2.so";

/// curl fetching `urls` with `--http2` on `http://` (Upgrade: h2c), in
/// parallel, a connection each (curl 7.88 sometimes fails a request that
/// reuses an upgraded connection: "000"), one line per URL: method,
/// status, body bytes, HTTP version, URL.
pub fn curl_h2c_upgrade(urls: &[String]) -> Vec<String> {
    let mut args: Vec<String> =
        ["curl", "-s", "--http2", "--parallel", "--parallel-immediate", "-w"].iter().map(|a| a.to_string()).collect();
    args.push("%{method} %{http_code} %{size_download} %{http_version} %{url_effective}\\n".to_string());
    for u in urls {
        args.extend(["-o".to_string(), "/dev/null".to_string(), u.clone()]);
    }
    args
}
