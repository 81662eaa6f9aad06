use tachyon_macros::tachyon_rpc;

#[tachyon_rpc(msg_type = 70000)]
fn echo(req: &[u8]) -> Vec<u8> {
    req.to_vec()
}

fn main() {}
