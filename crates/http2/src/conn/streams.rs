//! The streams of a connection: opening, ending, resets, GOAWAY, the
//! marks loss leaves, and the outcome each one finishes with.

use super::*;

impl H2Conn {
    /// The stream a frame of `side` on `id` belongs to, opening it when the
    /// frame may open one: a client frame on a new odd id; a server frame
    /// on a client id the capture never saw opened, when the client's
    /// direction is lost (its request is missing, not absent).
    pub(super) fn stream_for_frame(&mut self, side: Side, id: u32, may_open: bool) -> Option<&mut Stream> {
        if !self.streams.contains_key(&id) {
            let client_lost = matches!(self.dirs[0].read, Read::Lost) || self.dirs[0].desync == Some(Desync::Gap);
            let opens = match side {
                Side::Client => id % 2 == 1 && id > self.last_opened[0],
                Side::Server => id % 2 == 1 && id > self.last_opened[0] && client_lost,
            };
            if !opens || !may_open {
                self.stats.frames_on_closed_streams += 1;
                return None;
            }
            self.last_opened[0] = id;
            let mut s = Stream::default();
            s.tx.stream = id;
            if side == Side::Server {
                s.gap = true;
                s.req_done = true;
                s.tx.note(Anomaly::NoRequest);
                s.tx.note(Anomaly::RequestGap);
            } else if matches!(self.dirs[1].read, Read::Lost) {
                // Its answer cannot be read.
                s.gap = true;
                s.tx.note(Anomaly::ResponseGap);
            }
            // A stream above the server's GOAWAY is never processed.
            s.refused = side == Side::Client && self.goaway[1].is_some_and(|(last, _)| id > last);
            self.insert_stream(id, s);
        }
        self.streams.get_mut(&id)
    }

    pub(super) fn insert_stream(&mut self, id: u32, s: Stream) {
        self.stats.streams += 1;
        self.changes += 1;
        self.streams.insert(id, s);
        if self.streams.len() > self.cfg.max_streams {
            // The oldest goes: its end may never come.
            if let Some((&oldest, _)) = self.streams.iter().next() {
                self.stats.stream_overflows += 1;
                if let Some(s) = self.streams.get_mut(&oldest) {
                    s.tx.note(Anomaly::StreamOverflow);
                    s.gap = true;
                }
                let now = self.dirs[0].now.0.max(self.dirs[1].now.0);
                self.finish(oldest, Outcome::CaptureGap, now);
            }
        }
    }

    /// The h2c upgrade request becomes stream 1, its request complete.
    pub(super) fn open_upgraded(&mut self, req: UpgradeRequest) {
        let mut s = Stream { req_done: true, ..Stream::default() };
        s.tx.stream = 1;
        s.tx.note(Anomaly::Upgraded);
        s.tx.has_request = true;
        s.tx.method = Some(req.method);
        s.tx.scheme = Some("http".to_string());
        s.tx.path = Some(req.path);
        s.tx.authority = req.authority;
        s.tx.request_body.wire_bytes = req.body_bytes;
        s.tx.timing.req_start = Some(req.req_start);
        s.tx.timing.req_end = Some(req.req_end);
        s.tx.req_frames = req.frames;
        // The client's settings ride in HTTP2-Settings (RFC 7540 3.2.1).
        let settings = req.headers.get("http2-settings").and_then(crate::detect::decode_base64url);
        s.tx.request_headers = req.headers;
        self.last_opened[0] = 1;
        self.insert_stream(1, s);
        if let Some(payload) = settings
            && let Some(list) = frame::parse_settings(&payload)
        {
            let list: Vec<(u16, u32)> = list.collect();
            self.apply_settings(Side::Client, &list);
        }
    }

    /// `side` sent END_STREAM on `id`.
    pub(super) fn end_side(&mut self, id: u32, side: Side, at: (i64, u64)) {
        let Some(s) = self.streams.get_mut(&id) else { return };
        match side {
            Side::Client => {
                s.req_done = true;
                s.tx.timing.req_end = Some(at.0);
                if let Some(f) = &mut s.tx.req_frames {
                    f.last = at.1;
                }
            }
            Side::Server => {
                s.resp_done = true;
                s.resp_started = true;
                s.tx.timing.resp_end = Some(at.0);
                if let Some(f) = &mut s.tx.resp_frames {
                    f.last = at.1;
                }
            }
        }
        if s.req_done && s.resp_done {
            self.finish(id, Outcome::Complete, at.0);
        }
    }

    /// RST_STREAM from `side` on `id` with `code`.
    pub(super) fn reset(&mut self, id: u32, side: Side, code: u32, at: i64) {
        self.stats.resets[side.index()] += 1;
        let Some(s) = self.streams.get_mut(&id) else {
            self.stats.late_resets += 1;
            return;
        };
        s.tx.reset = Some(Reset { by: side, code, at });
        s.tx.note(Anomaly::StreamReset);
        let outcome = match side {
            // The whole response came: the client stopped sending (or
            // the server stopped reading the request body, RFC 9113 8.1).
            _ if s.resp_done => Outcome::Complete,
            Side::Client => Outcome::ClientAbort,
            Side::Server if code == error_code::REFUSED_STREAM => Outcome::Refused,
            Side::Server => Outcome::ServerReset,
        };
        self.finish(id, outcome, at);
    }

    /// GOAWAY from `side`: streams the other side opened above `last` were
    /// never processed.
    pub(super) fn goaway(&mut self, side: Side, last: u32, code: u32, at: i64) {
        self.goaway[side.index()] = Some((last, code));
        self.stats.goaways += 1;
        if code != error_code::NO_ERROR {
            self.stats.goaway_errors += 1;
        }
        // Streams opened by the other side: odd ids for the client, even
        // (pushed) ids for the server.
        let parity = if side == Side::Server { 1 } else { 0 };
        let ids: Vec<u32> = self.streams.range(last + 1..).map(|(&k, _)| k).filter(|k| k % 2 == parity).collect();
        for id in ids {
            if let Some(s) = self.streams.get_mut(&id)
                && code != error_code::NO_ERROR
            {
                s.tx.note(Anomaly::GoawayError);
            }
            self.finish(id, Outcome::RefusedByGoaway, at);
        }
        // Streams at or below `last` carry on; the error is noted on them.
        if code != error_code::NO_ERROR {
            for s in self.streams.values_mut() {
                s.tx.note(Anomaly::GoawayError);
            }
        }
    }

    /// Marks stream `id` as missing `n` octets sent by `side`.
    pub(super) fn mark_gap(&mut self, id: u32, side: Side, n: u64) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.gap = true;
            s.tx.missing_bytes += n;
            let done = if side == Side::Client { s.req_done } else { s.resp_done };
            if !done || n > 0 {
                s.tx.note(if side == Side::Client { Anomaly::RequestGap } else { Anomaly::ResponseGap });
            }
        }
    }

    /// The header blocks of `side` can no longer be decoded.
    pub(super) fn desync(&mut self, side: Side, why: Desync) {
        let d = &mut self.dirs[side.index()];
        if d.desync.is_none() {
            d.desync = Some(why);
            self.stats.hpack_desyncs += 1;
        }
    }

    /// Stream `id` is over: moves it to the finished list.
    pub(super) fn finish(&mut self, id: u32, outcome: Outcome, _at: i64) {
        let Some(mut s) = self.streams.remove(&id) else { return };
        self.changes += 1;
        let outcome = if s.gap && outcome != Outcome::RefusedByGoaway {
            Outcome::CaptureGap
        } else if s.malformed && outcome == Outcome::Complete {
            Outcome::Malformed
        } else {
            outcome
        };
        s.tx.outcome = outcome;
        self.stats.count(outcome);
        self.done.push(s.tx);
    }
}
