//! `pov flows`: one record per TCP connection, like `tshark -z conv,tcp`.

use pov_capture::tcp::{ConnSummary, DataChunk, StreamSink};

/// Collects the final record of every connection.
#[derive(Default)]
pub struct FlowCollector {
    /// Finished connections, in the order they finished.
    pub flows: Vec<ConnSummary>,
}

impl StreamSink for FlowCollector {
    fn on_data(&mut self, _chunk: &DataChunk<'_>) {}

    fn on_summary(&mut self, summary: &ConnSummary) {
        self.flows.push(summary.clone());
    }
}

impl FlowCollector {
    /// The flows in order of first packet (then connection id).
    pub fn into_sorted(mut self) -> Vec<ConnSummary> {
        self.flows.sort_by_key(|f| (f.first_ts, f.first_frame, f.id));
        self.flows
    }
}
