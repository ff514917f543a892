//! Decoder-level tests on synthetic datagrams: template life cycle, pending data, caps,
//! sampling, times, and randomized malformed input.

use super::*;
use crate::netflow::Flavor;
use crate::netflow::build::{MessageBuilder, V4_TEMPLATE, record, v4_record};
use crate::netflow::template::{FieldSpec, Plan, TemplateDef};

const T0: u32 = 1_700_000_000;

fn exporter(n: u8) -> Addr {
    Addr::from_v4_octets([192, 0, 2, n])
}

fn ipfix_template(id: u16) -> Vec<u8> {
    MessageBuilder::ipfix(T0, 0, 1)
        .template(id, V4_TEMPLATE)
        .finish()
}

fn ipfix_data(id: u16, n: usize) -> Vec<u8> {
    let recs: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            v4_record(
                0x0a00_0001 + i as u32,
                0x0a00_00ff,
                1000 + i as u16,
                80,
                2,
                120,
                1_700_000_000_000,
            )
        })
        .collect();
    MessageBuilder::ipfix(T0, 0, 1).data(id, &recs, 0).finish()
}

fn run(dec: &mut Decoder, from: Addr, datagrams: &[Vec<u8>]) -> Vec<FlowRecord> {
    let mut out = Vec::new();
    for d in datagrams {
        dec.decode(from, 0, d, &mut out);
    }
    out
}

#[test]
fn ipfix_records_decode_through_a_cached_template() {
    let mut dec = Decoder::new(DecoderConfig::default());
    let out = run(
        &mut dec,
        exporter(1),
        &[ipfix_template(256), ipfix_data(256, 3)],
    );
    assert_eq!(out.len(), 3);
    let r = &out[2];
    assert_eq!(r.src_addr.to_string(), "10.0.0.3");
    assert_eq!(
        (r.src_port, r.dst_port, r.proto, r.tcp_flags),
        (1002, 80, 6, 0x12)
    );
    assert_eq!((r.packets, r.bytes, r.in_if, r.out_if), (2, 120, 3, 4));
    assert_eq!(
        (r.time_start, r.time_end),
        (1_700_000_000_000, 1_700_000_001_000)
    );
    assert_eq!((r.exporter, r.domain, r.sampling_rate), (exporter(1), 1, 1));
    let st = dec.stats();
    assert_eq!(
        (st.ipfix.datagrams, st.ipfix.records, st.templates_active),
        (2, 3, 1)
    );
    assert_eq!(st.exporters[&exporter(1)].records, 3);
}

#[test]
fn data_before_its_template_is_held_then_decoded() {
    let mut dec = Decoder::new(DecoderConfig::default());
    let out = run(
        &mut dec,
        exporter(1),
        &[ipfix_data(256, 2), ipfix_template(256)],
    );
    assert_eq!(out.len(), 2);
    assert_eq!(
        (dec.stats().pending_sets, dec.stats().pending_sets_resolved),
        (1, 1)
    );
    // Without a template ever, finish counts it.
    let mut dec = Decoder::new(DecoderConfig::default());
    let mut out = run(&mut dec, exporter(1), &[ipfix_data(257, 2)]);
    dec.finish(&mut out);
    assert!(out.is_empty());
    assert_eq!(dec.stats().drops.get("set: no template"), Some(&1));
    assert_eq!(dec.session().pending_bytes(), 0);
}

#[test]
fn pending_data_is_bounded_and_overflow_counted() {
    let cfg = DecoderConfig {
        max_pending_bytes: 1000,
        ..Default::default()
    };
    let mut dec = Decoder::new(cfg);
    let data = ipfix_data(300, 5); // 5 * 55 bytes per set
    for _ in 0..10 {
        run(&mut dec, exporter(1), std::slice::from_ref(&data));
        assert!(dec.session().pending_bytes() <= 1000);
    }
    let full = dec
        .stats()
        .drops
        .get("set: no template (pending queue full)");
    assert_eq!(full, Some(&(10 - 1000 / (data.len() as u64 - 20))));
    let big = ipfix_data(301, 30);
    run(&mut dec, exporter(1), &[big]);
    assert_eq!(
        dec.stats()
            .drops
            .get("set: no template (too large to hold)"),
        Some(&1)
    );
}

#[test]
fn templates_are_kept_per_exporter_and_domain() {
    let mut dec = Decoder::new(DecoderConfig::default());
    // Exporter 2 uses id 256 for a different layout: ports only.
    let other = MessageBuilder::ipfix(T0, 0, 1)
        .template(256, &[(7, 2), (11, 2)])
        .finish();
    let other_data = MessageBuilder::ipfix(T0, 0, 1)
        .data(256, &[record(&[(53, 2), (5353, 2)])], 0)
        .finish();
    let a = run(&mut dec, exporter(1), &[ipfix_template(256)]);
    let b = run(&mut dec, exporter(2), &[other, other_data]);
    let c = run(&mut dec, exporter(1), &[ipfix_data(256, 1)]);
    assert!(a.is_empty());
    assert_eq!((b[0].src_port, b[0].dst_port), (53, 5353));
    assert_eq!(c[0].dst_port, 80);
    // Another domain of exporter 1 does not see its templates.
    let d = MessageBuilder::ipfix(T0, 0, 2)
        .data(256, &[v4_record(1, 2, 3, 4, 5, 6, 7)], 0)
        .finish();
    assert!(run(&mut dec, exporter(1), &[d]).is_empty());
    assert_eq!(dec.stats().pending_sets, 1);
}

#[test]
fn withdrawal_and_replacement_take_effect() {
    let mut dec = Decoder::new(DecoderConfig::default());
    run(&mut dec, exporter(1), &[ipfix_template(256)]);
    let w = MessageBuilder::ipfix(T0, 0, 1)
        .withdraw(256, false)
        .finish();
    run(&mut dec, exporter(1), &[w]);
    assert_eq!(dec.stats().templates_withdrawn, 1);
    assert!(run(&mut dec, exporter(1), &[ipfix_data(256, 1)]).is_empty());
    // A new definition under the same id replaces the layout.
    run(&mut dec, exporter(1), &[ipfix_template(257)]);
    let repl = MessageBuilder::ipfix(T0, 0, 1)
        .template(257, &[(11, 2), (7, 2)])
        .finish();
    let data = MessageBuilder::ipfix(T0, 0, 1)
        .data(257, &[record(&[(443, 2), (50000, 2)])], 0)
        .finish();
    let out = run(&mut dec, exporter(1), &[repl, data]);
    assert_eq!((out[0].src_port, out[0].dst_port), (50000, 443));
    assert_eq!(dec.stats().templates_replaced, 1);
    // Withdraw-all clears the domain.
    let all = MessageBuilder::ipfix(T0, 0, 1).withdraw(2, false).finish();
    run(&mut dec, exporter(1), &[all]);
    assert_eq!(dec.stats().templates_active, 0);
}

#[test]
fn a_template_flood_is_capped_and_evictions_counted() {
    let cfg = DecoderConfig {
        max_templates: 16,
        ..Default::default()
    };
    let mut dec = Decoder::new(cfg);
    for id in 256..1256u16 {
        run(&mut dec, exporter(1), &[ipfix_template(id)]);
    }
    let st = dec.stats();
    assert_eq!(st.templates_active, 16);
    assert_eq!(st.templates_evicted, 1000 - 16);
    // The newest templates survive.
    assert_eq!(run(&mut dec, exporter(1), &[ipfix_data(1255, 1)]).len(), 1);
}

#[test]
fn sampling_comes_from_options_per_sampler_and_the_override_wins() {
    let opts = MessageBuilder::v9(10_000, T0, 0, 7)
        .options_template(260, &[(1, 4)], &[(48, 1), (50, 4)])
        .data(
            260,
            &[
                record(&[(0, 4), (1, 1), (2000, 4)]),
                record(&[(0, 4), (2, 1), (4000, 4)]),
            ],
            0,
        )
        .finish();
    let tpl = MessageBuilder::v9(10_000, T0, 1, 7)
        .template(
            261,
            &[(8, 4), (12, 4), (2, 4), (1, 4), (48, 1), (22, 4), (21, 4)],
        )
        .finish();
    let data = MessageBuilder::v9(10_000, T0, 2, 7)
        .data(
            261,
            &[
                record(&[
                    (1, 4),
                    (2, 4),
                    (3, 4),
                    (100, 4),
                    (1, 1),
                    (4_000, 4),
                    (9_000, 4),
                ]),
                record(&[
                    (1, 4),
                    (2, 4),
                    (3, 4),
                    (100, 4),
                    (2, 1),
                    (4_000, 4),
                    (9_000, 4),
                ]),
                record(&[
                    (1, 4),
                    (2, 4),
                    (3, 4),
                    (100, 4),
                    (9, 1),
                    (4_000, 4),
                    (9_000, 4),
                ]),
            ],
            0,
        )
        .finish();
    let mut dec = Decoder::new(DecoderConfig::default());
    let out = run(
        &mut dec,
        exporter(1),
        &[opts.clone(), tpl.clone(), data.clone()],
    );
    let rates: Vec<(u32, u64, u64)> = out
        .iter()
        .map(|r| (r.sampling_rate, r.packets, r.bytes))
        .collect();
    assert_eq!(
        rates,
        vec![(2000, 6000, 200_000), (4000, 12_000, 400_000), (1, 3, 100)]
    );
    assert_eq!(dec.stats().options_records, 2);
    let boot = T0 as u64 * 1000 - 10_000;
    assert_eq!(
        (out[0].time_start, out[0].time_end),
        (boot + 4_000, boot + 9_000)
    );
    assert_eq!(out[0].domain, 7);

    let cfg = DecoderConfig {
        sampling_overrides: vec![
            ("192.0.2.0/24".parse().unwrap(), 10),
            ("192.0.2.1/32".parse().unwrap(), 100),
        ],
        ..Default::default()
    };
    let mut dec = Decoder::new(cfg);
    let out = run(
        &mut dec,
        exporter(1),
        &[opts.clone(), tpl.clone(), data.clone()],
    );
    assert!(
        out.iter()
            .all(|r| r.sampling_rate == 100 && r.packets == 300)
    );
    let out = run(&mut dec, exporter(2), &[opts, tpl, data]);
    assert!(out.iter().all(|r| r.sampling_rate == 10));
}

#[test]
fn ipfix_packet_interval_and_space_give_the_rate() {
    let m = MessageBuilder::ipfix(T0, 0, 1)
        .options_template(400, &[(149, 4)], &[(305, 4), (306, 4)])
        .data(400, &[record(&[(1, 4), (1, 4), (99, 4)])], 0)
        .template(401, &[(8, 4), (12, 4), (2, 4)])
        .data(401, &[record(&[(1, 4), (2, 4), (5, 4)])], 0)
        .finish();
    let mut dec = Decoder::new(DecoderConfig::default());
    let out = run(&mut dec, exporter(1), &[m]);
    assert_eq!((out[0].sampling_rate, out[0].packets), (100, 500));
}

#[test]
fn ipfix_times_in_every_form() {
    let init = 1_600_000_000_000u64;
    let ntp = |ms: u64| -> u128 {
        let secs = ms / 1000 + 2_208_988_800;
        ((secs as u128) << 32) | (((ms % 1000) << 32) / 1000 + 1) as u128
    };
    type Case = (Vec<(u16, u16)>, Vec<(u128, u16)>, (u64, u64));
    let cases: Vec<Case> = vec![
        (
            vec![(150, 4), (151, 4)],
            vec![(1_700_000_000, 4), (1_700_000_005, 4)],
            (1_700_000_000_000, 1_700_000_005_000),
        ),
        (
            vec![(152, 8), (153, 8)],
            vec![(1_700_000_000_123, 8), (1_700_000_000_456, 8)],
            (1_700_000_000_123, 1_700_000_000_456),
        ),
        (
            vec![(154, 8), (155, 8)],
            vec![(ntp(1_700_000_000_250), 8), (ntp(1_700_000_000_750), 8)],
            (1_700_000_000_250, 1_700_000_000_750),
        ),
        (
            vec![(156, 8), (157, 8)],
            vec![(ntp(1_700_000_000_001), 8), (ntp(1_700_000_000_002), 8)],
            (1_700_000_000_001, 1_700_000_000_002),
        ),
        (
            vec![(158, 4), (159, 4)],
            vec![(3_000_000, 4), (1_000_000, 4)],
            (T0 as u64 * 1000 - 3000, T0 as u64 * 1000 - 1000),
        ),
        (
            vec![(160, 8), (22, 4), (21, 4)],
            vec![(init as u128, 8), (500, 4), (700, 4)],
            (init + 500, init + 700),
        ),
    ];
    for (fields, values, want) in cases {
        let mut tpl = vec![(8, 4), (12, 4)];
        tpl.extend(&fields);
        let mut vals = vec![(1, 4), (2, 4)];
        vals.extend(&values);
        let m = MessageBuilder::ipfix(T0, 0, 1)
            .template(500, &tpl)
            .data(500, &[record(&vals)], 0)
            .finish();
        let mut dec = Decoder::new(DecoderConfig::default());
        let out = run(&mut dec, exporter(1), &[m]);
        assert_eq!((out[0].time_start, out[0].time_end), want, "{fields:?}");
    }
}

#[test]
fn icmp_type_code_goes_to_the_destination_port() {
    let m = MessageBuilder::ipfix(T0, 0, 1)
        .template(600, &[(8, 4), (12, 4), (4, 1), (7, 2), (176, 1), (177, 1)])
        .data(
            600,
            &[record(&[(1, 4), (2, 4), (1, 1), (999, 2), (3, 1), (3, 1)])],
            0,
        )
        .finish();
    let mut dec = Decoder::new(DecoderConfig::default());
    let out = run(&mut dec, exporter(1), &[m]);
    assert_eq!((out[0].src_port, out[0].dst_port), (0, 3 * 256 + 3));
}

#[test]
fn bad_datagrams_are_counted_by_reason() {
    let tpl = ipfix_template(256);
    let mut lying = tpl.clone();
    lying[2..4].copy_from_slice(&5000u16.to_be_bytes());
    let mut short_set = ipfix_data(256, 1);
    short_set[18..20].copy_from_slice(&2u16.to_be_bytes());
    let mut overrun = ipfix_data(256, 1);
    overrun[18..20].copy_from_slice(&900u16.to_be_bytes());
    let endless = MessageBuilder::ipfix(T0, 0, 1)
        .raw(&[0, 2, 0, 12, 1, 0, 0, 200, 0, 8, 0, 4])
        .finish();
    let v9_short = vec![0, 9, 0, 1, 0, 0];
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "datagram: too short"),
        (vec![0, 7, 0, 0, 1, 2, 3, 4], "datagram: unknown version"),
        (vec![0xff; 40], "datagram: unknown version"),
        (lying, "datagram: ipfix message length lies"),
        (tpl[..10].to_vec(), "datagram: ipfix shorter than header"),
        (short_set, "set: ipfix set length too short"),
        (overrun, "set: ipfix set runs past message"),
        (endless, "template: truncated"),
        (v9_short, "datagram: v9 shorter than header"),
    ];
    for (bytes, reason) in cases {
        let mut dec = Decoder::new(DecoderConfig::default());
        let mut out = Vec::new();
        dec.decode(exporter(1), 0, &bytes, &mut out);
        assert_eq!(
            dec.stats().drops.get(reason),
            Some(&1),
            "{reason}: {:?}",
            dec.stats().drops
        );
        assert_eq!(dec.stats().exporters[&exporter(1)].drops, 1);
    }
}

/// A tiny deterministic generator (xorshift64*), so failures reproduce from the seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    vec![
        crate::netflow::v5::build(5_000, T0, 0, &[(1, 2, 3, 4, 6, 5, 6, 100, 200); 3]),
        [ipfix_template(256), ipfix_data(256, 4)].concat(),
        ipfix_template(256),
        ipfix_data(256, 4),
        MessageBuilder::v9(10_000, T0, 0, 7)
            .options_template(260, &[(1, 4)], &[(48, 1), (50, 4)])
            .data(260, &[record(&[(0, 4), (1, 1), (2000, 4)])], 2)
            .template(
                261,
                &[(8, 4), (12, 4), (2, 4), (1, 4), (48, 1), (22, 4), (21, 4)],
            )
            .data(
                261,
                &[record(&[
                    (1, 4),
                    (2, 4),
                    (3, 4),
                    (100, 4),
                    (1, 1),
                    (4_000, 4),
                    (9_000, 4),
                ])],
                3,
            )
            .finish(),
        MessageBuilder::ipfix(T0, 0, 1)
            .template_pen(
                700,
                &[(7, 0, 2), (96, 0, 0xffff), (1, 29305, 8), (11, 0, 2)],
            )
            .data(
                700,
                &[vec![
                    0, 80, 3, b'a', b'b', b'c', 0, 0, 0, 0, 0, 0, 0, 9, 0, 53,
                ]],
                1,
            )
            .withdraw(700, false)
            .finish(),
    ]
}

#[test]
fn mutated_datagrams_never_panic_and_memory_stays_bounded() {
    let cfg = DecoderConfig {
        max_templates: 64,
        max_pending_bytes: 4096,
        max_domains: 64,
        max_exporters: 8,
        ..Default::default()
    };
    let mut dec = Decoder::new(cfg);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let seeds = seeds();
    let mut out = Vec::new();
    for i in 0..20_000 {
        let mut d = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(4) {
            match rng.below(5) {
                0 if !d.is_empty() => {
                    let at = rng.below(d.len());
                    d[at] ^= 1 << rng.below(8);
                }
                1 if !d.is_empty() => {
                    let at = rng.below(d.len());
                    d[at] = [0, 0xff, 1, 2, 255][rng.below(5)];
                }
                2 => d.truncate(rng.below(d.len() + 1)),
                3 if d.len() > 4 => {
                    // Rewrite a 16-bit length-like field.
                    let at = rng.below(d.len() - 1);
                    let v = [0u16, 1, 3, 4, 0xffff, rng.next() as u16][rng.below(6)];
                    d[at..at + 2].copy_from_slice(&v.to_be_bytes());
                }
                _ => {
                    let other = &seeds[rng.below(seeds.len())];
                    d.extend_from_slice(&other[rng.below(other.len())..]);
                }
            }
        }
        out.clear();
        let from = exporter(rng.below(12) as u8);
        dec.decode(from, i, &d, &mut out);
        // Every record takes at least one byte of the datagram (or of a held set).
        assert!(
            out.len() <= d.len() + 4096,
            "{} records from {} bytes",
            out.len(),
            d.len()
        );
        assert!(dec.session().pending_bytes() <= 4096);
        assert!(dec.stats().templates_active <= 64);
        assert!(dec.stats().exporters.len() <= 8);
    }
    dec.finish(&mut out);
    let st = dec.stats();
    assert_eq!(st.datagrams, 20_000);
    assert!(st.records > 0 && st.total_drops() > 0, "{st:?}");
}

#[test]
fn the_fixed_offset_loop_agrees_with_the_field_walk() {
    // Random templates over known, unknown and enterprise elements, random data: the fast
    // path and the naive reference must produce the same records.
    let pool: &[(u16, u32, u16)] = &[
        (8, 0, 4),
        (12, 0, 4),
        (27, 0, 16),
        (28, 0, 16),
        (7, 0, 2),
        (11, 0, 2),
        (4, 0, 1),
        (6, 0, 1),
        (6, 0, 2),
        (5, 0, 1),
        (1, 0, 8),
        (1, 0, 4),
        (2, 0, 4),
        (85, 0, 8),
        (10, 0, 4),
        (14, 0, 2),
        (16, 0, 4),
        (17, 0, 2),
        (15, 0, 4),
        (18, 0, 4),
        (62, 0, 16),
        (152, 0, 8),
        (153, 0, 8),
        (22, 0, 4),
        (21, 0, 4),
        (32, 0, 2),
        (48, 0, 1),
        (34, 0, 4),
        (999, 0, 3),
        (1, 29305, 8),
        (5, 6871, 2),
        (61, 0, 1),
        (9, 0, 1),
        (13, 0, 1),
    ];
    let mut rng = Rng(42);
    for _ in 0..500 {
        let n = 1 + rng.below(12);
        let fields: Vec<FieldSpec> = (0..n)
            .map(|_| {
                let (id, enterprise, len) = pool[rng.below(pool.len())];
                FieldSpec {
                    id,
                    enterprise,
                    len,
                    scope: false,
                }
            })
            .collect();
        let def = TemplateDef {
            id: 256,
            options: false,
            fields,
        };
        let plan = Plan::compile(Flavor::Ipfix, &def, &Default::default()).unwrap();
        let len = plan.fixed_len.unwrap();
        let body: Vec<u8> = (0..len * (1 + rng.below(4)) + rng.below(len))
            .map(|_| rng.next() as u8)
            .collect();
        let mut fast = Vec::new();
        let mut slow = Vec::new();
        let blank = FlowRecord::default();
        let mut sink = Vec::new();
        let a = plan.decode_into(&body, &blank, &mut sink, |r, s| fast.push((r.clone(), *s)));
        let c = plan.for_each_record(&body, &blank, |_, _| {});
        let b = plan.walk_records(&body, &blank, |r, s| slow.push((r.clone(), *s)));
        assert_eq!(a, b);
        assert_eq!(c, b);
        assert_eq!(fast, slow, "{:?}", def.fields);
    }
}
