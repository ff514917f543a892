//! Integration tests of flowdrill-filter, in one binary (ripgrep's layout).

mod util;

mod cases;
mod custom;
mod errors;
mod nfdump;
mod randomized;
mod reference;
mod sql;
