//! flowdrill-analysis: placeholder, see the crate README.
