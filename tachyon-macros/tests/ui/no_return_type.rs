use tachyon_macros::tachyon_rpc;

#[tachyon_rpc(msg_type = 1)]
fn log(req: String) {
    let _ = req;
}

fn main() {}
