//! flowdrill-filter: placeholder, see the crate README.
