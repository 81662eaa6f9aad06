use tachyon_macros::tachyon_rpc;

#[tachyon_rpc(msg_type = 1)]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

fn main() {}
