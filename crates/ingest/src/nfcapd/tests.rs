//! Unit tests of the nfcapd reader on files built here, record by record, with a small
//! writer that follows the layout in the module doc.

use super::*;

/// Builds nfcapd files for tests.
struct FileBuilder {
    compression: u8,
    blocks: Vec<(Vec<u8>, u32)>,
    appendix: Option<(Vec<u8>, u32)>,
}

fn rec(rtype: u16, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&rtype.to_le_bytes());
    v.extend_from_slice(&((body.len() + 4) as u16).to_le_bytes());
    v.extend_from_slice(body);
    v
}

fn elem(etype: u16, data: &[u8]) -> Vec<u8> {
    rec(etype, data)
}

/// A V3 record: header fields and elements.
fn v3(engine: (u8, u8), exporter_id: u16, flags: u8, elems: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(elems.len() as u16).to_le_bytes());
    body.push(engine.0);
    body.push(engine.1);
    body.extend_from_slice(&exporter_id.to_le_bytes());
    body.push(flags);
    body.push(9);
    for e in elems {
        body.extend_from_slice(e);
    }
    rec(REC_V3, &body)
}

#[allow(clippy::too_many_arguments)]
fn generic(
    first: u64,
    last: u64,
    pkts: u64,
    bytes: u64,
    sp: u16,
    dp: u16,
    proto: u8,
    flags: u8,
    tos: u8,
) -> Vec<u8> {
    let mut d = Vec::new();
    for v in [first, last, last + 5, pkts, bytes] {
        d.extend_from_slice(&v.to_le_bytes());
    }
    d.extend_from_slice(&sp.to_le_bytes());
    d.extend_from_slice(&dp.to_le_bytes());
    d.extend_from_slice(&[proto, flags, 0, tos]);
    elem(EX_GENERIC_FLOW, &d)
}

fn ipv4(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&u32::from_be_bytes(src).to_le_bytes());
    d.extend_from_slice(&u32::from_be_bytes(dst).to_le_bytes());
    elem(EX_IPV4_FLOW, &d)
}

fn v6_bytes(a: &str) -> [u8; 16] {
    let v: u128 = a.parse::<std::net::Ipv6Addr>().unwrap().into();
    let mut d = [0u8; 16];
    d[..8].copy_from_slice(&((v >> 64) as u64).to_le_bytes());
    d[8..].copy_from_slice(&(v as u64).to_le_bytes());
    d
}

fn exporter_info(sysid: u16, v4: [u8; 4]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&10u32.to_le_bytes());
    let mut ip = [0u8; 16];
    ip[8..12].copy_from_slice(&u32::from_be_bytes(v4).to_le_bytes());
    b.extend_from_slice(&ip);
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&sysid.to_le_bytes());
    b.extend_from_slice(&7u32.to_le_bytes());
    rec(REC_EXPORTER_INFO, &b)
}

fn sampler(sysid: u16, id: i64, packet: u32, space: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&sysid.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&id.to_le_bytes());
    b.extend_from_slice(&packet.to_le_bytes());
    b.extend_from_slice(&space.to_le_bytes());
    rec(REC_SAMPLER, &b)
}

fn stat_record(vals: [u64; 18]) -> Vec<u8> {
    let b: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    rec(REC_STAT, &b)
}

impl FileBuilder {
    fn new(compression: u8) -> Self {
        FileBuilder {
            compression,
            blocks: Vec::new(),
            appendix: None,
        }
    }
    fn block(mut self, recs: &[Vec<u8>]) -> Self {
        self.blocks.push((recs.concat(), recs.len() as u32));
        self
    }
    fn appendix(mut self, recs: &[Vec<u8>]) -> Self {
        self.appendix = Some((recs.concat(), recs.len() as u32));
        self
    }
    fn pack(&self, payload: &[u8]) -> Vec<u8> {
        match self.compression {
            0 => payload.to_vec(),
            3 => lz4_flex::block::compress(payload),
            4 => zstd::bulk::compress(payload, 3).unwrap(),
            c => panic!("no test compressor for {c}"),
        }
    }
    fn build(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let add = |body: &mut Vec<u8>, payload: &[u8], n: u32| {
            let p = self.pack(payload);
            body.extend_from_slice(&n.to_le_bytes());
            body.extend_from_slice(&(p.len() as u32).to_le_bytes());
            body.extend_from_slice(&3u16.to_le_bytes());
            body.extend_from_slice(&0u16.to_le_bytes());
            body.extend_from_slice(&p);
        };
        for (p, n) in &self.blocks {
            add(&mut body, p, *n);
        }
        let appendix_at = (FILE_HEADER_LEN + body.len()) as u64;
        if let Some((p, n)) = &self.appendix {
            add(&mut body, p, *n);
        }
        let mut h = Vec::new();
        h.extend_from_slice(&MAGIC.to_le_bytes());
        h.extend_from_slice(&LAYOUT_VERSION_2.to_le_bytes());
        h.extend_from_slice(&0x0107_0100u32.to_le_bytes());
        h.extend_from_slice(&1_700_000_000i64.to_le_bytes());
        h.push(self.compression);
        h.push(0);
        h.extend_from_slice(&(self.appendix.is_some() as u16).to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        let off = if self.appendix.is_some() {
            appendix_at
        } else {
            0
        };
        h.extend_from_slice(&off.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&(self.blocks.len() as u32).to_le_bytes());
        assert_eq!(h.len(), FILE_HEADER_LEN);
        h.extend_from_slice(&body);
        h
    }
}

/// A file with two exporters, a sampler, IPv4 and IPv6 flows, an unknown element, an
/// exporter-stat record and an appendix.
fn sample_file(compression: u8) -> Vec<u8> {
    let mut six = Vec::new();
    six.extend_from_slice(&v6_bytes("2001:db8::1"));
    six.extend_from_slice(&v6_bytes("2001:db8:ffff::2"));
    let misc = {
        let mut d = Vec::new();
        d.extend_from_slice(&3u32.to_le_bytes());
        d.extend_from_slice(&4u32.to_le_bytes());
        d.extend_from_slice(&[24, 16, 0, 0, 0, 0, 0, 0]);
        elem(EX_FLOW_MISC, &d)
    };
    let asr = {
        let mut d = 64512u32.to_le_bytes().to_vec();
        d.extend_from_slice(&15169u32.to_le_bytes());
        elem(EX_AS_ROUTING, &d)
    };
    let samp = {
        let mut d = 5i64.to_le_bytes().to_vec();
        d.extend_from_slice(&2u16.to_le_bytes());
        d.extend_from_slice(&0u16.to_le_bytes());
        elem(EX_SAMPLER_INFO, &d)
    };
    let nh = elem(
        EX_IP_NEXT_HOP_V4,
        &u32::from_be_bytes([10, 0, 0, 254]).to_le_bytes(),
    );
    let recv = elem(
        EX_IP_RECEIVED_V4,
        &u32::from_be_bytes([192, 0, 2, 9]).to_le_bytes(),
    );
    let unknown = elem(39, &77u64.to_le_bytes());
    FileBuilder::new(compression)
        .block(&[
            exporter_info(1, [127, 0, 0, 1]),
            exporter_info(2, [198, 51, 100, 1]),
            sampler(2, 5, 1, 99),
            v3(
                (0, 0),
                1,
                0,
                &[
                    ipv4([10, 8, 0, 1], [173, 194, 119, 48]),
                    generic(
                        1_704_067_390_100,
                        1_704_067_390_304,
                        5,
                        320,
                        53497,
                        80,
                        6,
                        0x1e,
                        0,
                    ),
                    misc,
                    recv,
                ],
            ),
            v3(
                (1, 2),
                2,
                V3_FLAG_SAMPLED,
                &[
                    generic(
                        1_704_067_391_000,
                        1_704_067_392_000,
                        100,
                        15000,
                        0,
                        0x0303,
                        58,
                        0,
                        0xb8,
                    ),
                    elem(EX_IPV6_FLOW, &six),
                    asr,
                    nh,
                    samp,
                    unknown,
                ],
            ),
            rec(REC_EXPORTER_STAT, &[0u8; 28]),
        ])
        .block(&[
            v3(
                (0, 0),
                9,
                0,
                &[generic(
                    1_704_067_400_000,
                    1_704_067_400_000,
                    1,
                    40,
                    1,
                    2,
                    17,
                    0,
                    0,
                )],
            ),
            // No EXgenericFlow: skipped, as nfdump does.
            v3((0, 0), 1, 0, &[ipv4([1, 1, 1, 1], [2, 2, 2, 2])]),
        ])
        .appendix(&[
            rec(REC_IDENT, b"test-ident\0"),
            stat_record([
                3, 15360, 106, 1, 1, 1, 0, 320, 40, 15000, 0, 5, 1, 100, 0, 1, 2, 0,
            ]),
        ])
        .build()
}

#[test]
fn reads_every_mapped_field_of_a_built_file() {
    let (recs, h) = read_bytes(&sample_file(0)).unwrap();
    assert_eq!(recs.len(), 3);
    let a = &recs[0];
    assert_eq!(a.src_addr.to_string(), "10.8.0.1");
    assert_eq!(a.dst_addr.to_string(), "173.194.119.48");
    assert_eq!(
        (a.time_start, a.time_end),
        (1_704_067_390_100, 1_704_067_390_304)
    );
    assert_eq!(
        (a.packets, a.bytes, a.src_port, a.dst_port),
        (5, 320, 53497, 80)
    );
    assert_eq!((a.proto, a.tcp_flags, a.tos), (6, 0x1e, 0));
    assert_eq!((a.in_if, a.out_if, a.src_mask, a.dst_mask), (3, 4, 24, 16));
    assert_eq!(a.exporter.to_string(), "192.0.2.9", "EXipReceived wins");
    assert_eq!(a.sampling_rate, 1);
    assert_eq!(a.next_hop, Addr::UNSPECIFIED_V4);

    let b = &recs[1];
    assert_eq!(b.src_addr.to_string(), "2001:db8::1");
    assert_eq!(b.dst_addr.to_string(), "2001:db8:ffff::2");
    assert_eq!((b.proto, b.dst_port, b.tos), (58, 0x0303, 0xb8));
    assert_eq!((b.src_as, b.dst_as), (64512, 15169));
    assert_eq!(b.next_hop.to_string(), "10.0.0.254");
    assert_eq!(
        b.exporter.to_string(),
        "198.51.100.1",
        "exporter info by sysid"
    );
    assert_eq!(b.sampling_rate, 100, "1 of 100 from the sampler record");
    assert_eq!((b.packets, b.bytes), (100, 15000), "stored counts are kept");
    assert_eq!(b.domain, 0x0102);

    let c = &recs[2];
    assert_eq!(c.src_addr, Addr::UNSPECIFIED_V4);
    assert_eq!(
        c.exporter,
        Addr::UNSPECIFIED_V4,
        "unknown sysid: 0.0.0.0 as nfdump prints"
    );

    assert_eq!(h.ident.as_deref(), Some("test-ident"));
    let s = h.stats.unwrap();
    assert_eq!((s.flows, s.bytes, s.packets), (3, 15360, 106));
    assert_eq!((s.first_ms, s.last_ms), (1, 2));
    assert_eq!(h.compression, Compression::None);
    assert_eq!(h.num_blocks, 2);
}

#[test]
fn stats_count_what_was_skipped() {
    let data = sample_file(0);
    let mut rd = NfcapdReader::new(&data[..]).unwrap();
    let mut n = 0;
    while rd.next_record().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 3);
    let s = rd.stats();
    assert_eq!(s.blocks, 3);
    assert_eq!(s.flows, 3);
    assert_eq!(s.records, 10);
    assert_eq!(s.without_counters, 1);
    assert_eq!((s.exporters, s.samplers), (2, 1));
    assert_eq!(s.skipped_records, 1);
    assert_eq!(s.skipped_elements, 1);
    assert_eq!(s.sampled, 1);
    assert_eq!(s.without_addresses, 1);
    assert!(rd.next_record().unwrap().is_none(), "stays at the end");
    let ex = rd.exporters();
    assert_eq!(ex.len(), 2);
    assert_eq!(
        (ex[0].sysid, ex[0].addr.to_string()),
        (1, "127.0.0.1".to_string())
    );
    assert_eq!((ex[1].version, ex[1].id), (10, 7));
    assert_eq!(rd.sampling_rate(2, 5), Some(100));
    assert_eq!(rd.sampling_rate(2, 6), None);
}

#[test]
fn compressed_files_read_like_the_uncompressed_one() {
    let plain = read_bytes(&sample_file(0)).unwrap();
    for c in [3u8, 4] {
        let got = read_bytes(&sample_file(c)).unwrap();
        assert_eq!(got.0, plain.0, "compression {c}");
        assert_eq!(got.1.stats, plain.1.stats);
        assert_eq!(got.1.compression, Compression::from_code(c));
    }
}

#[test]
fn header_errors_table() {
    let good = sample_file(0);
    let with = |at: usize, v: &[u8]| {
        let mut d = good.clone();
        d[at..at + v.len()].copy_from_slice(v);
        d
    };
    type Case = (&'static str, Vec<u8>, fn(&Error) -> bool);
    let cases: Vec<Case> = vec![
        ("empty", vec![], |e| {
            matches!(e, Error::TruncatedHeader { len: 0 })
        }),
        ("short", good[..20].to_vec(), |e| {
            matches!(e, Error::TruncatedHeader { len: 20 })
        }),
        ("magic", with(0, &[0x0d, 0xa5]), |e| {
            matches!(e, Error::BadMagic { magic: 0xa50d })
        }),
        ("layout 3", with(2, &[3, 0]), |e| {
            matches!(e, Error::UnsupportedLayout { version: 3 })
        }),
        ("bz2", with(16, &[2]), |e| {
            matches!(e, Error::UnsupportedCompression { name: "BZ2" })
        }),
        ("code 9", with(16, &[9]), |e| {
            matches!(e, Error::UnsupportedCompression { .. })
        }),
        ("encrypted", with(17, &[1]), |e| {
            matches!(e, Error::Encrypted { code: 1 })
        }),
    ];
    for (name, data, ok) in cases {
        let e = NfcapdReader::new(&data[..]).unwrap_err();
        assert!(ok(&e), "{name}: {e}");
    }
    let e = NfcapdReader::new(&with(16, &[2])[..])
        .unwrap_err()
        .to_string();
    assert!(e.contains("nfdump -r FILE"), "{e}");
}

#[test]
fn a_lying_block_size_is_refused_before_allocating() {
    let mut d = sample_file(0);
    d[FILE_HEADER_LEN + 4..FILE_HEADER_LEN + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = read_bytes(&d).unwrap_err();
    assert!(
        matches!(
            e,
            Error::BlockTooLarge {
                block: 0,
                offset: 40,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn record_errors_name_block_and_position() {
    let mut d = sample_file(0);
    // The first record's size field (block payload starts at 52) → 2, below its header.
    d[54..56].copy_from_slice(&2u16.to_le_bytes());
    let e = read_bytes(&d).unwrap_err();
    assert!(
        matches!(
            e,
            Error::CorruptRecord {
                block: 0,
                offset: 40,
                record: 0,
                pos: 0,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn truncation_at_every_offset_is_an_error_never_a_panic() {
    for c in [0u8, 3, 4] {
        let d = sample_file(c);
        for cut in 0..d.len() {
            // Every cut loses at least part of a block or the header.
            assert!(
                read_bytes(&d[..cut]).is_err(),
                "compression {c}, cut at {cut}"
            );
        }
        assert!(read_bytes(&d).is_ok());
    }
}

#[test]
fn flipped_bytes_never_panic() {
    for c in [0u8, 3, 4] {
        let d = sample_file(c);
        for i in 0..d.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut m = d.clone();
                m[i] ^= x;
                // Either outcome is fine; reaching here without a panic is the test.
                let _ = read_bytes(&m);
            }
        }
    }
}

#[test]
fn detection_table() {
    let cases: &[(&[u8], bool)] = &[
        (&[0x0c, 0xa5, 0x02, 0x00], true),
        (&[0x0c, 0xa5, 0x01, 0x00], true),
        (&[0x0c, 0xa5, 0x03, 0x00], false),
        (&[0xa5, 0x0c, 0x00, 0x02], false),
        (&[0x0c, 0xa5], false),
        (b"ts,te,td", false),
    ];
    for (input, want) in cases {
        assert_eq!(looks_like_nfcapd(input), *want, "{input:?}");
    }
}

#[test]
fn read_file_names_the_path_it_cannot_read() {
    let e = read_file(Path::new("/nonexistent/nfcapd.202401010000")).unwrap_err();
    assert!(matches!(e, Error::File { .. }), "{e}");
    assert!(
        e.to_string().contains("/nonexistent/nfcapd.202401010000"),
        "{e}"
    );
}
