//! HPACK header decoding (RFC 7541): the static and dynamic tables, the
//! integer and string representations, Huffman-coded strings.
//!
//! A [`Decoder`] decodes the header blocks of one direction of one
//! connection, in order; it only reads (an observer never answers). Each
//! decoded field goes to a callback, borrowed: a block costs no
//! allocation beyond what the dynamic table keeps.
//!
//! The dynamic table's size is what the encoder sets with size updates
//! (4,096 octets until it sends one). The SETTINGS_HEADER_TABLE_SIZE of
//! the receiving side bounds it; an observer may have missed that
//! setting, so a size update above it is counted
//! ([`BlockInfo::size_update_over_setting`]) and obeyed, up to a hard cap
//! ([`Decoder::new`]) beyond which the block fails with
//! [`HpackError::TableTooLarge`].

use std::collections::VecDeque;

use crate::huffman::{self, HuffmanError};

/// The static table (RFC 7541 Appendix A), index 1 first.
pub const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// The table size every connection starts with (RFC 7540 6.5.2).
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// Octets an entry adds to the table size besides its name and value
/// (RFC 7541 4.1).
pub const ENTRY_OVERHEAD: usize = 32;

/// Why a header block did not decode. After any of these the decoder's
/// table can no longer be trusted (the block may have changed it in ways
/// not seen): the caller treats the direction as desynchronised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HpackError {
    /// The block ended inside a representation.
    Truncated,
    /// An index beyond the static and dynamic tables (or index 0).
    BadIndex(u64),
    /// An integer longer than 32 bits.
    IntegerOverflow,
    /// A Huffman string did not decode.
    Huffman(HuffmanError),
    /// A dynamic table size update after a field (RFC 7541 4.2).
    SizeUpdateMisplaced,
    /// A size update above the decoder's hard cap.
    TableTooLarge(u64),
}

impl std::fmt::Display for HpackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HpackError::Truncated => write!(f, "header block ends inside a field"),
            HpackError::BadIndex(i) => write!(f, "table index {i} out of range"),
            HpackError::IntegerOverflow => write!(f, "integer over 32 bits"),
            HpackError::Huffman(HuffmanError::Eos) => write!(f, "EOS inside a huffman string"),
            HpackError::Huffman(HuffmanError::BadPadding) => write!(f, "bad huffman padding"),
            HpackError::SizeUpdateMisplaced => write!(f, "table size update after a field"),
            HpackError::TableTooLarge(n) => write!(f, "table size update to {n} over the cap"),
        }
    }
}

impl std::error::Error for HpackError {}

/// What a block did besides its fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockInfo {
    /// Fields decoded.
    pub fields: usize,
    /// Fields added to the dynamic table.
    pub inserted: usize,
    /// Entries evicted from it.
    pub evicted: usize,
    /// Size updates in the block.
    pub size_updates: usize,
    /// A size update above the receiver's SETTINGS_HEADER_TABLE_SIZE.
    pub size_update_over_setting: bool,
    /// Whether a field referred to the dynamic table (its value depends on
    /// every earlier block of the direction).
    pub used_dynamic: bool,
}

/// One dynamic table entry: name and value in one buffer.
#[derive(Clone, Debug)]
struct Entry {
    bytes: Box<[u8]>,
    name_len: usize,
}

impl Entry {
    fn name(&self) -> &[u8] {
        &self.bytes[..self.name_len]
    }
    fn value(&self) -> &[u8] {
        &self.bytes[self.name_len..]
    }
    fn size(&self) -> usize {
        self.bytes.len() + ENTRY_OVERHEAD
    }
}

/// An HPACK decoder for one direction of a connection.
#[derive(Clone, Debug)]
pub struct Decoder {
    /// Newest first (index 62 is `entries[0]`).
    entries: VecDeque<Entry>,
    size: usize,
    capacity: usize,
    setting: usize,
    hard_cap: usize,
    name: Vec<u8>,
    value: Vec<u8>,
}

impl Decoder {
    /// A decoder whose table starts at 4,096 octets and may grow by size
    /// updates up to `hard_cap` octets.
    pub fn new(hard_cap: usize) -> Decoder {
        Decoder {
            entries: VecDeque::new(),
            size: 0,
            capacity: DEFAULT_TABLE_SIZE.min(hard_cap),
            setting: DEFAULT_TABLE_SIZE,
            hard_cap,
            name: Vec::new(),
            value: Vec::new(),
        }
    }

    /// Records the receiver's SETTINGS_HEADER_TABLE_SIZE (the bound the
    /// encoder's size updates must respect).
    pub fn set_setting(&mut self, v: usize) {
        self.setting = v;
    }

    /// The dynamic table's size in octets (RFC 7541 4.1: names, values
    /// and 32 octets per entry).
    pub fn table_size(&self) -> usize {
        self.size
    }

    /// The dynamic table's maximum size, as last set by the encoder.
    pub fn table_capacity(&self) -> usize {
        self.capacity
    }

    /// Entries in the dynamic table.
    pub fn table_len(&self) -> usize {
        self.entries.len()
    }

    /// Dynamic table entry `i` (1 is the newest), as (name, value).
    pub fn table_entry(&self, i: usize) -> Option<(&[u8], &[u8])> {
        let e = self.entries.get(i.checked_sub(1)?)?;
        Some((e.name(), e.value()))
    }

    /// Decodes one complete header block, calling `field(name, value,
    /// never_indexed)` for each field in order.
    pub fn decode(&mut self, block: &[u8], mut field: impl FnMut(&[u8], &[u8], bool)) -> Result<BlockInfo, HpackError> {
        let mut info = BlockInfo::default();
        let mut at = 0usize;
        while at < block.len() {
            let b = block[at];
            if b & 0x80 != 0 {
                // 6.1 Indexed header field.
                let i = int(block, &mut at, 7)?;
                let (n, v) = self.lookup(i, &mut info)?;
                field(n, v, false);
                info.fields += 1;
            } else if b & 0xc0 == 0x40 {
                // 6.2.1 Literal with incremental indexing.
                let i = int(block, &mut at, 6)?;
                self.literal(block, &mut at, i, &mut info)?;
                field(&self.name, &self.value, false);
                info.fields += 1;
                self.insert(&mut info);
            } else if b & 0xe0 == 0x20 {
                // 6.3 Dynamic table size update: only before the first
                // field of a block (4.2).
                if info.fields > 0 {
                    return Err(HpackError::SizeUpdateMisplaced);
                }
                let n = int(block, &mut at, 5)?;
                if n > self.hard_cap as u64 {
                    return Err(HpackError::TableTooLarge(n));
                }
                if n > self.setting.max(DEFAULT_TABLE_SIZE) as u64 {
                    info.size_update_over_setting = true;
                }
                self.capacity = n as usize;
                info.size_updates += 1;
                info.evicted += self.evict(0);
            } else {
                // 6.2.2 Literal without indexing (0000), 6.2.3 never
                // indexed (0001).
                let never = b & 0x10 != 0;
                let i = int(block, &mut at, 4)?;
                self.literal(block, &mut at, i, &mut info)?;
                field(&self.name, &self.value, never);
                info.fields += 1;
            }
        }
        Ok(info)
    }

    /// Name and value at table index `i` (static first, then dynamic).
    fn lookup(&self, i: u64, info: &mut BlockInfo) -> Result<(&[u8], &[u8]), HpackError> {
        let i = usize::try_from(i).map_err(|_| HpackError::BadIndex(i))?;
        if (1..=STATIC_TABLE.len()).contains(&i) {
            let (n, v) = STATIC_TABLE[i - 1];
            return Ok((n.as_bytes(), v.as_bytes()));
        }
        info.used_dynamic = true;
        i.checked_sub(STATIC_TABLE.len()).and_then(|d| self.table_entry(d)).ok_or(HpackError::BadIndex(i as u64))
    }

    /// Reads a literal field whose name is at index `name_index` (0: a
    /// literal name follows) into `self.name` and `self.value`.
    fn literal(
        &mut self,
        block: &[u8],
        at: &mut usize,
        name_index: u64,
        info: &mut BlockInfo,
    ) -> Result<(), HpackError> {
        let mut name = std::mem::take(&mut self.name);
        name.clear();
        if name_index == 0 {
            string(block, at, &mut name)?;
        } else {
            let (n, _) = self.lookup(name_index, info)?;
            name.extend_from_slice(n);
        }
        self.name = name;
        self.value.clear();
        string(block, at, &mut self.value)
    }

    /// Adds `self.name: self.value` to the table, evicting as needed
    /// (RFC 7541 4.4: an entry larger than the table empties it).
    fn insert(&mut self, info: &mut BlockInfo) {
        let size = self.name.len() + self.value.len() + ENTRY_OVERHEAD;
        if size > self.capacity {
            info.evicted += self.entries.len();
            self.entries.clear();
            self.size = 0;
            return;
        }
        info.evicted += self.evict(size);
        let mut bytes = Vec::with_capacity(self.name.len() + self.value.len());
        bytes.extend_from_slice(&self.name);
        bytes.extend_from_slice(&self.value);
        self.entries.push_front(Entry { bytes: bytes.into_boxed_slice(), name_len: self.name.len() });
        self.size += size;
        info.inserted += 1;
    }

    /// Evicts the oldest entries until `room` more octets fit.
    fn evict(&mut self, room: usize) -> usize {
        let mut n = 0;
        while self.size + room > self.capacity {
            match self.entries.pop_back() {
                Some(e) => {
                    self.size -= e.size();
                    n += 1;
                }
                None => break,
            }
        }
        n
    }
}

/// Reads an integer with an `n`-bit prefix (RFC 7541 5.1) at `*at`.
fn int(block: &[u8], at: &mut usize, n: u32) -> Result<u64, HpackError> {
    let max = (1u64 << n) - 1;
    let first = *block.get(*at).ok_or(HpackError::Truncated)?;
    *at += 1;
    let mut v = u64::from(first) & max;
    if v < max {
        return Ok(v);
    }
    let mut shift = 0u32;
    loop {
        let b = *block.get(*at).ok_or(HpackError::Truncated)?;
        *at += 1;
        v += u64::from(b & 0x7f) << shift;
        if v > u64::from(u32::MAX) {
            return Err(HpackError::IntegerOverflow);
        }
        if b & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
        if shift > 28 {
            return Err(HpackError::IntegerOverflow);
        }
    }
}

/// Reads a string literal (RFC 7541 5.2) at `*at`, appending it to `out`.
fn string(block: &[u8], at: &mut usize, out: &mut Vec<u8>) -> Result<(), HpackError> {
    let huff = block.get(*at).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = int(block, at, 7)? as usize;
    let end = at.checked_add(len).filter(|e| *e <= block.len()).ok_or(HpackError::Truncated)?;
    let raw = &block[*at..end];
    *at = end;
    if huff {
        huffman::decode(raw, out).map_err(HpackError::Huffman)
    } else {
        out.extend_from_slice(raw);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn decode(d: &mut Decoder, block: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        d.decode(&hex(block), |n, v, _| {
            out.push((String::from_utf8(n.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap()))
        })
        .unwrap();
        out
    }

    fn table(d: &Decoder) -> Vec<(String, String)> {
        (1..=d.table_len())
            .map(|i| {
                let (n, v) = d.table_entry(i).unwrap();
                (String::from_utf8(n.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap())
            })
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn c1_integers() {
        // C.1.1: 10 on a 5-bit prefix.
        let mut at = 0;
        assert_eq!(int(&[0b1110_1010], &mut at, 5), Ok(10));
        // C.1.2: 1337 on a 5-bit prefix.
        at = 0;
        assert_eq!(int(&[0b0001_1111, 0b1001_1010, 0b0000_1010], &mut at, 5), Ok(1337));
        assert_eq!(at, 3);
        // C.1.3: 42 on 8 bits.
        at = 0;
        assert_eq!(int(&[42], &mut at, 8), Ok(42));
        // Truncated and overlong integers are errors, not panics.
        at = 0;
        assert_eq!(int(&[0x1f, 0x80], &mut at, 5), Err(HpackError::Truncated));
        at = 0;
        assert_eq!(int(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0x7f], &mut at, 5), Err(HpackError::IntegerOverflow));
    }

    #[test]
    fn c2_field_representations() {
        // C.2.1 Literal with indexing.
        let mut d = Decoder::new(1 << 16);
        assert_eq!(
            decode(&mut d, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"),
            pairs(&[("custom-key", "custom-header")])
        );
        assert_eq!(table(&d), pairs(&[("custom-key", "custom-header")]));
        assert_eq!(d.table_size(), 55);
        // C.2.2 Literal without indexing.
        let mut d = Decoder::new(1 << 16);
        assert_eq!(decode(&mut d, "040c 2f73 616d 706c 652f 7061 7468"), pairs(&[(":path", "/sample/path")]));
        assert_eq!((d.table_len(), d.table_size()), (0, 0));
        // C.2.3 Literal never indexed.
        let mut d = Decoder::new(1 << 16);
        let mut never = Vec::new();
        d.decode(&hex("1008 7061 7373 776f 7264 0673 6563 7265 74"), |n, v, ni| {
            never.push((n.to_vec(), v.to_vec(), ni))
        })
        .unwrap();
        assert_eq!(never, vec![(b"password".to_vec(), b"secret".to_vec(), true)]);
        assert_eq!((d.table_len(), d.table_size()), (0, 0));
        // C.2.4 Indexed field.
        let mut d = Decoder::new(1 << 16);
        assert_eq!(decode(&mut d, "82"), pairs(&[(":method", "GET")]));
        assert_eq!((d.table_len(), d.table_size()), (0, 0));
    }

    /// C.3 and C.4: the same three requests, without and with Huffman.
    fn requests(blocks: [&str; 3]) {
        let mut d = Decoder::new(1 << 16);
        assert_eq!(
            decode(&mut d, blocks[0]),
            pairs(&[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")])
        );
        assert_eq!(table(&d), pairs(&[(":authority", "www.example.com")]));
        assert_eq!(d.table_size(), 57);
        assert_eq!(
            decode(&mut d, blocks[1]),
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache")
            ])
        );
        assert_eq!(table(&d), pairs(&[("cache-control", "no-cache"), (":authority", "www.example.com")]));
        assert_eq!(d.table_size(), 110);
        assert_eq!(
            decode(&mut d, blocks[2]),
            pairs(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value")
            ])
        );
        assert_eq!(
            table(&d),
            pairs(&[("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com")])
        );
        assert_eq!(d.table_size(), 164);
    }

    #[test]
    fn c3_requests_without_huffman() {
        requests([
            "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            "8286 84be 5808 6e6f 2d63 6163 6865",
            "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
        ]);
    }

    #[test]
    fn c4_requests_with_huffman() {
        requests([
            "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
            "8286 84be 5886 a8eb 1064 9cbf",
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        ]);
    }

    /// C.5 and C.6: three responses with a 256-octet table (evictions).
    fn responses(blocks: [&str; 3]) {
        let mut d = Decoder::new(1 << 16);
        // SETTINGS_HEADER_TABLE_SIZE 256 and the encoder's size update
        // that follows it (the RFC's examples start with the table there).
        d.set_setting(256);
        d.decode(&[0x3f, 0xe1, 0x01], |_, _, _| {}).unwrap();
        assert_eq!(d.table_capacity(), 256);
        let date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
        assert_eq!(
            decode(&mut d, blocks[0]),
            pairs(&[
                (":status", "302"),
                ("cache-control", "private"),
                ("date", date1),
                ("location", "https://www.example.com")
            ])
        );
        assert_eq!(
            table(&d),
            pairs(&[
                ("location", "https://www.example.com"),
                ("date", date1),
                ("cache-control", "private"),
                (":status", "302")
            ])
        );
        assert_eq!(d.table_size(), 222);
        assert_eq!(
            decode(&mut d, blocks[1]),
            pairs(&[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", date1),
                ("location", "https://www.example.com")
            ])
        );
        assert_eq!(
            table(&d),
            pairs(&[
                (":status", "307"),
                ("location", "https://www.example.com"),
                ("date", date1),
                ("cache-control", "private")
            ])
        );
        assert_eq!(d.table_size(), 222);
        let date2 = "Mon, 21 Oct 2013 20:13:22 GMT";
        let cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
        assert_eq!(
            decode(&mut d, blocks[2]),
            pairs(&[
                (":status", "200"),
                ("cache-control", "private"),
                ("date", date2),
                ("location", "https://www.example.com"),
                ("content-encoding", "gzip"),
                ("set-cookie", cookie)
            ])
        );
        assert_eq!(table(&d), pairs(&[("set-cookie", cookie), ("content-encoding", "gzip"), ("date", date2)]));
        assert_eq!(d.table_size(), 215);
    }

    #[test]
    fn c5_responses_without_huffman() {
        responses([
            "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32
             3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            "4803 3330 37c1 c0bf",
            "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970
             7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61
             6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
        ]);
    }

    #[test]
    fn c6_responses_with_huffman() {
        responses([
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad
             1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
            "4883 640e ffc1 c0bf",
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2
             e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
        ]);
    }

    #[test]
    fn bad_blocks_are_errors() {
        let mut d = Decoder::new(1 << 16);
        // Index 0, an index past the tables, a string past the block.
        assert_eq!(d.decode(&[0x80], |_, _, _| {}), Err(HpackError::BadIndex(0)));
        assert_eq!(d.decode(&[0xbe], |_, _, _| {}), Err(HpackError::BadIndex(62)));
        assert_eq!(d.decode(&[0x40, 0x05, b'a'], |_, _, _| {}), Err(HpackError::Truncated));
        // A size update after a field; one over the hard cap.
        assert_eq!(d.decode(&[0x82, 0x20], |_, _, _| {}), Err(HpackError::SizeUpdateMisplaced));
        let mut small = Decoder::new(100);
        assert_eq!(small.decode(&[0x3f, 0xe1, 0x01], |_, _, _| {}), Err(HpackError::TableTooLarge(256)));
        // An update over the setting but under the cap is obeyed and told.
        let info = d.decode(&[0x3f, 0xe1, 0x3f], |_, _, _| {}).unwrap();
        assert!(info.size_update_over_setting);
        assert_eq!(d.table_capacity(), 8192);
    }

    #[test]
    fn an_entry_larger_than_the_table_empties_it() {
        let mut d = Decoder::new(1 << 16);
        // Size 64, then custom-key: custom-header (55), then a 40-octet
        // value under a 10-octet name (82 > 64).
        d.decode(&[0x3f, 0x21], |_, _, _| {}).unwrap();
        decode(&mut d, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
        assert_eq!(d.table_size(), 55);
        let mut block = hex("400a 6375 7374 6f6d 2d6b 6579 28");
        block.extend_from_slice(&[b'v'; 40]);
        let info = d.decode(&block, |_, _, _| {}).unwrap();
        assert_eq!((info.inserted, info.evicted, d.table_len(), d.table_size()), (0, 1, 0, 0));
    }
}
