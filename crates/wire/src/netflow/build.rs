//! Builders of NetFlow v9 and IPFIX messages, for tests, fuzz seeds and benchmarks.
//!
//! They write what the caller says, including nonsense (that is what the malformed-input
//! tests need): no validation beyond keeping set and message lengths consistent.

/// Builds one v9 or IPFIX message set by set.
#[derive(Clone, Debug)]
pub struct MessageBuilder {
    ipfix: bool,
    buf: Vec<u8>,
    /// Start of the open set, whose length is patched when it closes.
    open: Option<usize>,
    /// v9 header count: records in the message.
    records: u16,
}

impl MessageBuilder {
    /// An IPFIX message header (length patched by [`MessageBuilder::finish`]).
    pub fn ipfix(export_secs: u32, sequence: u32, domain: u32) -> MessageBuilder {
        let mut buf = vec![0, 10, 0, 0];
        buf.extend_from_slice(&export_secs.to_be_bytes());
        buf.extend_from_slice(&sequence.to_be_bytes());
        buf.extend_from_slice(&domain.to_be_bytes());
        MessageBuilder {
            ipfix: true,
            buf,
            open: None,
            records: 0,
        }
    }

    /// A v9 header (count patched by [`MessageBuilder::finish`]).
    pub fn v9(uptime_ms: u32, unix_secs: u32, sequence: u32, source_id: u32) -> MessageBuilder {
        let mut buf = vec![0, 9, 0, 0];
        buf.extend_from_slice(&uptime_ms.to_be_bytes());
        buf.extend_from_slice(&unix_secs.to_be_bytes());
        buf.extend_from_slice(&sequence.to_be_bytes());
        buf.extend_from_slice(&source_id.to_be_bytes());
        MessageBuilder {
            ipfix: false,
            buf,
            open: None,
            records: 0,
        }
    }

    fn set(&mut self, id: u16) {
        self.close();
        self.open = Some(self.buf.len());
        self.buf.extend_from_slice(&id.to_be_bytes());
        self.buf.extend_from_slice(&[0, 0]);
    }

    fn close(&mut self) {
        if let Some(start) = self.open.take() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
        }
    }

    fn push_field(&mut self, id: u16, pen: u32, len: u16) {
        if pen != 0 {
            self.buf.extend_from_slice(&(id | 0x8000).to_be_bytes());
            self.buf.extend_from_slice(&len.to_be_bytes());
            self.buf.extend_from_slice(&pen.to_be_bytes());
        } else {
            self.buf.extend_from_slice(&id.to_be_bytes());
            self.buf.extend_from_slice(&len.to_be_bytes());
        }
    }

    /// A template set with one template of IANA elements `(id, length)`.
    pub fn template(self, id: u16, fields: &[(u16, u16)]) -> MessageBuilder {
        let f: Vec<(u16, u32, u16)> = fields.iter().map(|&(i, l)| (i, 0, l)).collect();
        self.template_pen(id, &f)
    }

    /// A template set with one template of `(id, enterprise, length)` (IPFIX only for a
    /// non-zero enterprise).
    pub fn template_pen(mut self, id: u16, fields: &[(u16, u32, u16)]) -> MessageBuilder {
        self.set(if self.ipfix { 2 } else { 0 });
        self.buf.extend_from_slice(&id.to_be_bytes());
        self.buf
            .extend_from_slice(&(fields.len() as u16).to_be_bytes());
        for &(i, pen, l) in fields {
            self.push_field(i, pen, l);
        }
        self.records += 1;
        self.close();
        self
    }

    /// An options template set: `scope` fields then `fields`.
    pub fn options_template(
        mut self,
        id: u16,
        scope: &[(u16, u16)],
        fields: &[(u16, u16)],
    ) -> MessageBuilder {
        self.set(if self.ipfix { 3 } else { 1 });
        self.buf.extend_from_slice(&id.to_be_bytes());
        if self.ipfix {
            self.buf
                .extend_from_slice(&((scope.len() + fields.len()) as u16).to_be_bytes());
            self.buf
                .extend_from_slice(&(scope.len() as u16).to_be_bytes());
        } else {
            self.buf
                .extend_from_slice(&((scope.len() * 4) as u16).to_be_bytes());
            self.buf
                .extend_from_slice(&((fields.len() * 4) as u16).to_be_bytes());
        }
        for &(i, l) in scope.iter().chain(fields) {
            self.push_field(i, 0, l);
        }
        self.records += 1;
        self.close();
        self
    }

    /// An IPFIX withdrawal of template `id` (or all, with id 2 / 3).
    pub fn withdraw(mut self, id: u16, options: bool) -> MessageBuilder {
        self.set(if options { 3 } else { 2 });
        self.buf.extend_from_slice(&id.to_be_bytes());
        self.buf.extend_from_slice(&[0, 0]);
        self.close();
        self
    }

    /// A data set for template `id` holding `records` (already encoded), then `padding`
    /// zero bytes.
    pub fn data(mut self, id: u16, records: &[Vec<u8>], padding: usize) -> MessageBuilder {
        self.set(id);
        for r in records {
            self.buf.extend_from_slice(r);
        }
        self.buf.extend(std::iter::repeat_n(0u8, padding));
        self.records += records.len() as u16;
        self.close();
        self
    }

    /// Raw bytes appended as they are (to build broken messages).
    pub fn raw(mut self, bytes: &[u8]) -> MessageBuilder {
        self.close();
        self.buf.extend_from_slice(bytes);
        self
    }

    /// The finished message.
    pub fn finish(mut self) -> Vec<u8> {
        self.close();
        if self.ipfix {
            let len = self.buf.len().min(u16::MAX as usize) as u16;
            self.buf[2..4].copy_from_slice(&len.to_be_bytes());
        } else {
            self.buf[2..4].copy_from_slice(&self.records.to_be_bytes());
        }
        self.buf
    }
}

/// Encodes a record from `(value, length)` pairs, big-endian, each value cut to its length.
pub fn record(fields: &[(u128, u16)]) -> Vec<u8> {
    let mut r = Vec::new();
    for &(v, l) in fields {
        let bytes = v.to_be_bytes();
        let l = (l as usize).min(16);
        r.extend_from_slice(&bytes[16 - l..]);
    }
    r
}

/// The IPv4 flow template the tests, fuzz seeds and benchmarks share: addresses, ports,
/// protocol, flags, counters and millisecond times (`(element, length)`).
pub const V4_TEMPLATE: &[(u16, u16)] = &[
    (8, 4),
    (12, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (6, 1),
    (5, 1),
    (10, 4),
    (14, 4),
    (2, 8),
    (1, 8),
    (152, 8),
    (153, 8),
];

/// One record of [`V4_TEMPLATE`].
pub fn v4_record(
    src: u32,
    dst: u32,
    sport: u16,
    dport: u16,
    packets: u64,
    bytes: u64,
    start_ms: u64,
) -> Vec<u8> {
    record(&[
        (src as u128, 4),
        (dst as u128, 4),
        (sport as u128, 2),
        (dport as u128, 2),
        (6, 1),
        (0x12, 1),
        (0, 1),
        (3, 4),
        (4, 4),
        (packets as u128, 8),
        (bytes as u128, 8),
        (start_ms as u128, 8),
        (start_ms as u128 + 1000, 8),
    ])
}
