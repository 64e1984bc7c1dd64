//! `pov flows`: one record per TCP connection, like `tshark -z conv,tcp`.

use std::collections::BTreeMap;
use std::io::{self, Write};

use pov_capture::Ts;
use pov_capture::http::HttpTransaction;
use pov_capture::tcp::ConnSummary;

use crate::output::{FlowRow, Format, RecordWriter};
use crate::parallel::{AsIs, Downstream, Flow, GO_ON};

/// Finished connections held back so that records come out in order of
/// first packet: a connection that started earlier usually ends later.
pub const REORDER_WINDOW: usize = 4096;

/// Writes one record per connection as connections finish, in order of
/// first packet as long as no more than [`REORDER_WINDOW`] later-started
/// connections finish while an earlier one is still open (beyond that the
/// earliest held is written, so memory stays bounded).
pub struct FlowWriter<W: Write> {
    out: RecordWriter<W, FlowRow>,
    held: BTreeMap<(Ts, u64, u64), FlowRow>,
    window: usize,
}

impl<W: Write> FlowWriter<W> {
    /// A writer of `format` into `out`.
    pub fn new(out: W, format: Format) -> io::Result<FlowWriter<W>> {
        FlowWriter::with_window(out, format, REORDER_WINDOW)
    }

    /// A writer that holds at most `window` finished connections.
    pub fn with_window(out: W, format: Format, window: usize) -> io::Result<FlowWriter<W>> {
        Ok(FlowWriter { out: RecordWriter::new(out, format)?, held: BTreeMap::new(), window: window.max(1) })
    }

    /// Connections seen so far.
    pub fn count(&self) -> u64 {
        self.out.count() + self.held.len() as u64
    }

    /// Writes the held connections and ends the output; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        while let Some((_, row)) = self.held.pop_first() {
            self.out.write(&row)?;
        }
        self.out.finish()
    }
}

impl<W: Write> Downstream for FlowWriter<W> {
    type Item = HttpTransaction;
    type Prep = AsIs;
    fn preparer(&self) -> AsIs {
        AsIs
    }
    fn on_transaction(&mut self, _tx: HttpTransaction) -> Flow {
        GO_ON
    }

    fn on_summary(&mut self, s: &ConnSummary) -> Flow {
        self.held.insert((s.first_ts, s.first_frame, s.id), FlowRow::from_summary(s));
        if self.held.len() > self.window
            && let Some((_, row)) = self.held.pop_first()
        {
            self.out.write(&row)?;
        }
        GO_ON
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_ids(out: &[u8]) -> Vec<u64> {
        String::from_utf8_lossy(out)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_u64().unwrap())
            .collect()
    }

    fn summary(id: u64, start: u64) -> ConnSummary {
        use pov_capture::tcp::{CloseHow, ConnState, HalfStats, RoleSource};
        ConnSummary {
            id,
            client: "192.0.2.1:40000".parse().unwrap(),
            server: "192.0.2.2:80".parse().unwrap(),
            roles: RoleSource::Syn,
            first_ts: Ts(start as i64 * 1000),
            last_ts: Ts(start as i64 * 1000 + 5000),
            first_frame: start,
            last_frame: start + 3,
            handshake: None,
            syn_seen: true,
            syn_ack_seen: false,
            to_server: HalfStats::default(),
            to_client: HalfStats::default(),
            close: CloseHow::EndOfCapture,
            close_ts: Ts(start as i64 * 1000 + 5000),
            state: ConnState::S0,
            vlan: None,
            tls: None,
        }
    }

    #[test]
    fn finished_connections_come_out_in_start_order_within_the_window() {
        let mut w = FlowWriter::with_window(Vec::new(), Format::Jsonl, 3).unwrap();
        // Connection 1 starts first and finishes last; 2..4 fit the window.
        for (id, start) in [(2, 20), (4, 40), (3, 30), (1, 10)] {
            assert!(w.on_summary(&summary(id, start)).unwrap().is_continue());
        }
        assert_eq!(row_ids(&w.finish().unwrap()), vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_full_window_writes_the_earliest_held() {
        let mut w = FlowWriter::with_window(Vec::new(), Format::Jsonl, 2).unwrap();
        for (id, start) in [(2, 20), (3, 30), (4, 40), (1, 10)] {
            assert!(w.on_summary(&summary(id, start)).unwrap().is_continue());
        }
        // 2 had to go before 1 finished; the rest are in order.
        assert_eq!(row_ids(&w.finish().unwrap()), vec![2, 1, 3, 4]);
    }

    #[test]
    fn json_array_and_csv_are_complete_with_and_without_rows() {
        for n in [0, 1, 3] {
            let mut w = FlowWriter::new(Vec::new(), Format::Json).unwrap();
            for i in 0..n {
                assert!(w.on_summary(&summary(i + 1, 10 * (i + 1))).unwrap().is_continue());
            }
            let out = w.finish().unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v.as_array().map(Vec::len), Some(n as usize));

            let mut w = FlowWriter::new(Vec::new(), Format::Csv).unwrap();
            for i in 0..n {
                assert!(w.on_summary(&summary(i + 1, 10 * (i + 1))).unwrap().is_continue());
            }
            let out = String::from_utf8(w.finish().unwrap()).unwrap();
            assert_eq!(out.lines().count(), 1 + n as usize);
            assert!(out.starts_with("id,ts,duration,client,server,"));
        }
    }
}
