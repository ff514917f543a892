//! flowdrill-store: placeholder, see the crate README.
