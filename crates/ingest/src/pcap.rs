//! pcap (being written).
