use tachyon_macros::tachyon_rpc;

#[tachyon_rpc(msg_type = 1)]
struct Echo;

fn main() {}
