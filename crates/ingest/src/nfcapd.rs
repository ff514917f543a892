//! nfcapd (being written).
