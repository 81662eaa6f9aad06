use tachyon_macros::tachyon_rpc;

#[tachyon_rpc(msg_type = 1)]
fn now() -> u64 {
    0
}

fn main() {}
