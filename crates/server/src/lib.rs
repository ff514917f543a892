//! flowdrill-server: placeholder, see the crate README.
