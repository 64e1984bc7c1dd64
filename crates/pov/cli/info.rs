//! `pov info` as a table.

use std::io::{self, Write};

use pov::output::Table;
use pov::pipeline::RunReport;
use pov_capture::pcap::Format;

/// Writes the run report for people: one row per file, then every counter.
pub fn write_table(w: &mut dyn Write, r: &RunReport) -> io::Result<()> {
    let mut t = Table::new(&["file", "format", "packets", "captured bytes", "first", "last", "span s", "link types"]);
    for f in &r.files {
        let format = match f.format {
            Format::Pcap { big_endian, nanosecond } => {
                format!("pcap ({}, {})", if big_endian { "be" } else { "le" }, if nanosecond { "ns" } else { "us" })
            }
            Format::Pcapng => "pcapng".to_string(),
        };
        let lt: Vec<String> = f.linktypes.iter().map(|(l, n)| format!("{}:{n}", pov_capture::Linktype(*l))).collect();
        let span = match (f.first_ts, f.last_ts) {
            (Some(a), Some(b)) => format!("{:.6}", (b - a).as_secs_f64()),
            _ => "-".into(),
        };
        t.row(vec![
            f.name.clone(),
            if f.gzip { format!("{format}+gzip") } else { format },
            f.packets.to_string(),
            f.captured_bytes.to_string(),
            f.first_ts.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            f.last_ts.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            span,
            lt.join(" "),
        ]);
    }
    t.write(w)?;
    writeln!(w)?;
    let mut c = Table::new(&["counter", "value"]);
    let mut add = |prefix: &str, v: serde_json::Value| {
        let mut flat = Vec::new();
        flatten(prefix, &v, &mut flat);
        for (k, v) in flat {
            c.row(vec![k, v]);
        }
    };
    add("decode", serde_json::to_value(&r.decode).unwrap_or_default());
    add("tcp", serde_json::to_value(&r.tcp).unwrap_or_default());
    if let Some(h) = &r.http {
        add("http", serde_json::to_value(h).unwrap_or_default());
    }
    if let Some(k) = &r.keys {
        add("keys", serde_json::to_value(k).unwrap_or_default());
    }
    if let Some(b) = &r.budget {
        add("budget", serde_json::to_value(b).unwrap_or_default());
    }
    if let Some(input) = r.input_counters() {
        add("input", input);
    }
    c.write(w)?;
    for e in &r.errors {
        writeln!(w, "error: {e}")?;
    }
    for e in &r.warnings {
        writeln!(w, "warning: {e}")?;
    }
    Ok(())
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                flatten(&format!("{prefix}.{k}"), v, out);
            }
        }
        serde_json::Value::Null => out.push((prefix.to_owned(), "-".into())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}
