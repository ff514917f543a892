//! Packet header parsing. (Being written.)
