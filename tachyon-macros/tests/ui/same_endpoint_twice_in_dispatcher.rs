use tachyon_macros::{dispatcher, tachyon_rpc};

#[tachyon_rpc(msg_type = 5)]
fn first(req: &[u8]) -> Vec<u8> {
    req.to_vec()
}

fn main() {
    let _d = dispatcher![first, first];
}
