use tachyon_macros::tachyon_rpc;

#[tachyon_rpc(msg_type = 1)]
fn echo<T>(req: T) -> T {
    req
}

fn main() {}
