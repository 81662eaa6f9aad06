use tachyon_macros::tachyon_rpc;

#[tachyon_rpc(msg_type = 1)]
fn hex(req: &[u8]) -> String {
    format!("{req:?}")
}

fn main() {}
