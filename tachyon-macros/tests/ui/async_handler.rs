use tachyon_macros::tachyon_rpc;

#[tachyon_rpc(msg_type = 1)]
async fn echo(req: String) -> String {
    req
}

fn main() {}
