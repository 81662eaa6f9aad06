use tachyon_macros::tachyon_rpc;

#[tachyon_rpc(msg_type = 1)]
fn len(req: &String) -> usize {
    req.len()
}

fn main() {}
