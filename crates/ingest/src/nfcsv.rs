//! nfcsv (being written).
