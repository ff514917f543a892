//! sFlow v5 decoding. (Being written.)
