use std::sync::Arc;
use std::time::Duration;
use tachyon::net::{Backend, TcpClient, TcpClientOptions, TcpServer, TcpServerOptions};
use tachyon::rpc::Dispatcher;

fn run(backend: Backend) {
    let mut d = Dispatcher::new();
    d.register_raw(1, "echo", <[u8]>::to_vec).unwrap();
    let server =
        TcpServer::bind("tcp://127.0.0.1:0", TcpServerOptions::default().backend(backend)).unwrap();
    let h = server.spawn(Arc::new(d)).unwrap();
    let c = TcpClient::connect_with(&h.address(), &TcpClientOptions::default()).unwrap();
    for i in 0..1000u32 {
        let r = c.invoke(1, &i.to_le_bytes(), Some(Duration::from_secs(5))).unwrap();
        assert_eq!(r, i.to_le_bytes());
    }
    let cids: Vec<u64> = (0..64u32).map(|i| c.call(&i.to_le_bytes(), 1).unwrap()).collect();
    for (i, cid) in cids.into_iter().enumerate().rev() {
        assert_eq!(c.wait_timeout(cid, Duration::from_secs(5)).unwrap(), (i as u32).to_le_bytes());
    }
    let e = c.invoke(9, b"", Some(Duration::from_secs(5))).unwrap_err();
    assert!(matches!(e, tachyon::Error::Rpc(_)), "{e}");
    eprintln!("{backend:?}: {:?}", h.stats());
    h.shutdown().unwrap();
}

#[test]
fn smoke_epoll() {
    run(Backend::Epoll);
}
#[test]
fn smoke_uring() {
    run(Backend::IoUring);
}
