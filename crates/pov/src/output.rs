//! Rendering records as tables, JSON and CSV, and writing files atomically.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use pov_capture::Ts;
use pov_capture::tcp::ConnSummary;

/// Output formats for commands that print records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON document (an array of records).
    Json,
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row (RFC 4180 quoting).
    Csv,
}

/// One row of `pov flows`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FlowRow {
    /// Connection id.
    pub id: u64,
    /// Capture time of the first packet (epoch seconds).
    pub ts: f64,
    /// Seconds from the first to the last packet.
    pub duration: f64,
    /// Client `address:port`.
    pub client: String,
    /// Server `address:port`.
    pub server: String,
    /// Packets client to server.
    pub c2s_packets: u64,
    /// Payload bytes client to server, retransmissions included.
    pub c2s_bytes: u64,
    /// Packets server to client.
    pub s2c_packets: u64,
    /// Payload bytes server to client, retransmissions included.
    pub s2c_bytes: u64,
    /// Distinct stream bytes delivered, client to server.
    pub c2s_stream_bytes: u64,
    /// Distinct stream bytes delivered, server to client.
    pub s2c_stream_bytes: u64,
    /// Bytes missing from the capture, client to server.
    pub c2s_gap_bytes: u64,
    /// Bytes missing from the capture, server to client.
    pub s2c_gap_bytes: u64,
    /// Handshake round trip in milliseconds (SYN to ACK), when seen.
    pub handshake_rtt_ms: Option<f64>,
    /// How the connection ended, e.g. `fin by server`, `rst by client`.
    pub close: String,
    /// Zeek-style connection state (SF, S0, REJ, RSTO, RSTR, OTH ...).
    pub state: String,
    /// How client and server were told apart.
    pub roles: String,
    /// First frame number.
    pub first_frame: u64,
    /// Last frame number.
    pub last_frame: u64,
    /// Anomalies, prefixed by direction (`c2s:retransmission` ...).
    pub anomalies: Vec<String>,
}

impl FlowRow {
    /// The row for one connection summary.
    pub fn from_summary(s: &ConnSummary) -> FlowRow {
        FlowRow {
            id: s.id,
            ts: s.first_ts.as_secs_f64(),
            duration: s.duration().as_secs_f64(),
            client: s.client.to_string(),
            server: s.server.to_string(),
            c2s_packets: s.to_server.packets,
            c2s_bytes: s.to_server.payload_bytes,
            s2c_packets: s.to_client.packets,
            s2c_bytes: s.to_client.payload_bytes,
            c2s_stream_bytes: s.to_server.stream_bytes,
            s2c_stream_bytes: s.to_client.stream_bytes,
            c2s_gap_bytes: s.to_server.gap_bytes,
            s2c_gap_bytes: s.to_client.gap_bytes,
            handshake_rtt_ms: s.handshake.map(|h| h.rtt().as_millis_f64()),
            close: s.close.describe(),
            state: format!("{:?}", s.state),
            roles: serde_json::to_value(s.roles).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            first_frame: s.first_frame,
            last_frame: s.last_frame,
            anomalies: s.anomalies(),
        }
    }
}

/// Writes flows in `format`. `capture_start` makes the table's start
/// column relative, as tshark's is.
pub fn write_flows(
    w: &mut dyn Write,
    flows: &[ConnSummary],
    format: Format,
    capture_start: Option<Ts>,
) -> io::Result<()> {
    let rows: Vec<FlowRow> = flows.iter().map(FlowRow::from_summary).collect();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *w, &rows)?;
            writeln!(w)
        }
        Format::Jsonl => {
            for r in &rows {
                serde_json::to_writer(&mut *w, r)?;
                writeln!(w)?;
            }
            Ok(())
        }
        Format::Csv => {
            let header = [
                "id",
                "ts",
                "duration",
                "client",
                "server",
                "c2s_packets",
                "c2s_bytes",
                "s2c_packets",
                "s2c_bytes",
                "c2s_stream_bytes",
                "s2c_stream_bytes",
                "c2s_gap_bytes",
                "s2c_gap_bytes",
                "handshake_rtt_ms",
                "close",
                "state",
                "roles",
                "first_frame",
                "last_frame",
                "anomalies",
            ];
            writeln!(w, "{}", header.join(","))?;
            for r in &rows {
                let fields = [
                    r.id.to_string(),
                    format!("{:.6}", r.ts),
                    format!("{:.6}", r.duration),
                    r.client.clone(),
                    r.server.clone(),
                    r.c2s_packets.to_string(),
                    r.c2s_bytes.to_string(),
                    r.s2c_packets.to_string(),
                    r.s2c_bytes.to_string(),
                    r.c2s_stream_bytes.to_string(),
                    r.s2c_stream_bytes.to_string(),
                    r.c2s_gap_bytes.to_string(),
                    r.s2c_gap_bytes.to_string(),
                    r.handshake_rtt_ms.map(|v| format!("{v:.3}")).unwrap_or_default(),
                    r.close.clone(),
                    r.state.clone(),
                    r.roles.clone(),
                    r.first_frame.to_string(),
                    r.last_frame.to_string(),
                    r.anomalies.join(" "),
                ];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                writeln!(w, "{}", line.join(","))?;
            }
            Ok(())
        }
        Format::Table => {
            let start = capture_start.unwrap_or(Ts(0));
            let mut t = Table::new(&[
                "#",
                "start",
                "duration",
                "client",
                "server",
                "c2s pkts",
                "c2s bytes",
                "s2c pkts",
                "s2c bytes",
                "rtt ms",
                "close",
                "state",
                "gap bytes",
                "anomalies",
            ]);
            for (s, r) in flows.iter().zip(&rows) {
                t.row(vec![
                    r.id.to_string(),
                    format!("{:.6}", (s.first_ts - start).as_secs_f64()),
                    format!("{:.6}", r.duration),
                    r.client.clone(),
                    r.server.clone(),
                    r.c2s_packets.to_string(),
                    r.c2s_bytes.to_string(),
                    r.s2c_packets.to_string(),
                    r.s2c_bytes.to_string(),
                    r.handshake_rtt_ms.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into()),
                    r.close.clone(),
                    r.state.clone(),
                    (r.c2s_gap_bytes + r.s2c_gap_bytes).to_string(),
                    if r.anomalies.is_empty() { "-".into() } else { r.anomalies.join(",") },
                ]);
            }
            t.write(w)
        }
    }
}

/// Quotes a CSV field when it needs it (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// A plain text table: columns padded to their widest cell; cells that
/// look numeric are right-aligned.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|s| s.to_string()).collect(), rows: Vec::new() }
    }

    /// Adds a row (missing cells are blank, extra cells ignored).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Writes the table.
    pub fn write(&self, w: &mut dyn Write) -> io::Result<()> {
        let n = self.header.len();
        let mut width: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().take(n).enumerate() {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let numeric = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-');
        // A column is right-aligned (header included) when every cell in
        // it is a number or "-".
        let right: Vec<bool> = (0..n)
            .map(|i| !self.rows.is_empty() && self.rows.iter().all(|r| r.get(i).is_some_and(|c| numeric(c))))
            .collect();
        let line = |w: &mut dyn Write, cells: &[String]| -> io::Result<()> {
            let mut out = String::new();
            for (i, wd) in width.iter().enumerate() {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = wd.saturating_sub(c.chars().count());
                if i > 0 {
                    out.push_str("  ");
                }
                if right[i] && i + 1 < n {
                    out.extend(std::iter::repeat_n(' ', pad));
                    out.push_str(c);
                } else {
                    out.push_str(c);
                    if i + 1 < n {
                        out.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
            writeln!(w, "{}", out.trim_end())
        };
        line(w, &self.header)?;
        for r in &self.rows {
            line(w, r)?;
        }
        Ok(())
    }
}

/// A file written under a temporary name in the same folder and renamed
/// over its real name only by [`AtomicFile::commit`], so a killed or failed
/// run never leaves a half-written file. Dropping it uncommitted removes the
/// temporary file.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<io::BufWriter<fs::File>>,
}

impl AtomicFile {
    /// Creates the temporary file for `path`.
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
        let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
        let file = fs::File::create(&tmp)?;
        Ok(AtomicFile { path: path.to_path_buf(), tmp, file: Some(io::BufWriter::with_capacity(1 << 20, file)) })
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> io::Result<()> {
        let Some(w) = self.file.take() else { return Ok(()) };
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        fs::rename(&self.tmp, &self.path)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.file.as_mut() {
            Some(f) => f.write(buf),
            None => Err(io::Error::other("file already committed")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `path` atomically (see [`AtomicFile`]).
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let mut f = AtomicFile::create(path)?;
    write(&mut f)?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn table_aligns_numbers_right() {
        let mut t = Table::new(&["name", "n", "note"]);
        t.row(vec!["a".into(), "5".into(), "x".into()]);
        t.row(vec!["bbb".into(), "100".into(), "y".into()]);
        let mut out = Vec::new();
        t.write(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "name    n  note\na       5  x\nbbb   100  y\n");
    }

    #[test]
    fn atomic_write_replaces_and_cleans_up() {
        let dir = std::env::temp_dir().join(format!("pov-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("out.txt");
        write_atomic(&p, |w| w.write_all(b"one")).unwrap();
        write_atomic(&p, |w| w.write_all(b"two")).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let err = write_atomic(&p, |_| Err(io::Error::other("boom")));
        assert!(err.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"two", "a failed write leaves the old file");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temporary left behind");
        fs::remove_dir_all(&dir).unwrap();
    }
}
