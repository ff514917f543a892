//! flowdrill-query: placeholder, see the crate README.
