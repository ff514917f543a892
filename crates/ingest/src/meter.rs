//! meter (being written).
