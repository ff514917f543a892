//! Writes a small scenario's packet pcap and export pcaps (for manual interop checks).
//! `cargo run -p flowdrill-gen --example write_small -- OUT_DIR [FLOWS]`
use flowdrill_gen::{ExportFormat, ExportOptions, Scenario, write_export_pcap, write_packets_pcap};
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut a = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(a.next().unwrap_or_else(|| ".".into()));
    let flows: u64 = a.next().map(|x| x.parse()).transpose()?.unwrap_or(5_000);
    let mut s = Scenario::demo();
    s.flows = flows;
    s.duration_ms = 900_000;
    let t = write_packets_pcap(&s, std::fs::File::create(dir.join("packets.pcap"))?)?;
    println!("{:?} padded46={}", t.total, t.bytes_padded_46);
    for (n, f) in [
        ("v9", ExportFormat::V9),
        ("ipfix", ExportFormat::Ipfix),
        ("v5", ExportFormat::V5),
    ] {
        let st = write_export_pcap(
            &s,
            f,
            &ExportOptions::default(),
            std::fs::File::create(dir.join(format!("{n}.pcap")))?,
        )?;
        println!("{n}: {:?}", st.exported);
    }
    Ok(())
}
