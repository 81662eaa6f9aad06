//! What the `tachyon` command shows, as library calls: [`doctor`] (what this machine
//! supports, found by trying each thing) and [`inspect`] (the rings processes hold, read
//! through /proc without writing). The top layer: it may use any other.

pub mod doctor;
pub mod inspect;
