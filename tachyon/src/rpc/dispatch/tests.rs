use std::cell::RefCell;
use std::collections::VecDeque;

use super::*;

/// An in-memory transport: the dispatcher is tested without shared memory.
#[derive(Default)]
struct Memory {
    requests: RefCell<VecDeque<(u64, u16, Vec<u8>)>>,
    replies: RefCell<Vec<(u64, u16, Vec<u8>)>>,
}

struct MemRequest(u64, u16, Vec<u8>);

impl Request for MemRequest {
    fn correlation_id(&self) -> u64 {
        self.0
    }
    fn msg_type(&self) -> u16 {
        self.1
    }
    fn data(&self) -> &[u8] {
        &self.2
    }
}

impl Transport for Memory {
    type Request<'a> = MemRequest;
    fn next_request(&self, _wait: Wait<'_>) -> Result<MemRequest> {
        let (c, m, d) =
            self.requests.borrow_mut().pop_front().ok_or(Error::PeerDead("test over"))?;
        Ok(MemRequest(c, m, d))
    }
    fn send_reply(&self, cid: u64, msg_type: u16, payload: &[u8], _wait: Wait<'_>) -> Result<()> {
        self.replies.borrow_mut().push((cid, msg_type, payload.to_vec()));
        Ok(())
    }
}

fn dispatcher() -> Dispatcher {
    let mut d = Dispatcher::new();
    d.register_raw(1, "echo", <[u8]>::to_vec).unwrap();
    d.register_typed(2, "add", |(a, b): (i32, i32)| Ok::<_, ServerError>(a + b)).unwrap();
    d.register_typed(3, "fail", |(): ()| Err::<(), _>("no luck")).unwrap();
    d.register_raw_fallible(4, "panic", |_: &[u8]| -> Result<Vec<u8>, ServerError> {
        panic!("kaboom")
    })
    .unwrap();
    d
}

#[test]
fn registration_rejects_reserved_and_duplicates() {
    let mut d = dispatcher();
    assert_eq!(d.register_raw(0xFFFF, "x", |_: &[u8]| vec![]).err(), Some(RegisterError::Reserved));
    assert_eq!(
        d.register_raw(1, "again", |_: &[u8]| vec![]).err(),
        Some(RegisterError::Duplicate { msg_type: 1, existing: "echo".into() })
    );
    assert_eq!(d.msg_types(), vec![1, 2, 3, 4]);
}

#[test]
fn every_failure_becomes_a_structured_error_reply() {
    let d = dispatcher();
    let mut out = Vec::new();
    assert_eq!(d.dispatch(1, b"hi", &mut out), 1);
    assert_eq!(out, b"hi");
    assert_eq!(d.dispatch(2, &crate::rpc::codec::encode(&(2, 3)).unwrap(), &mut out), 2);
    assert_eq!(crate::rpc::codec::decode::<i32>(&out).unwrap(), 5);
    for (mt, req, want) in [
        (9u16, &b""[..], code::UNKNOWN_MSG_TYPE),
        (3, &[0xC0][..], code::HANDLER_ERROR),
        (2, &b"garbage"[..], code::BAD_REQUEST),
        (4, &b""[..], code::HANDLER_PANIC),
    ] {
        assert_eq!(d.dispatch(mt, req, &mut out), MSG_TYPE_ERROR);
        let e = RpcError::decode(&out);
        assert_eq!((e.msg_type, e.code), (mt, want), "{e}");
    }
}

#[test]
fn serve_answers_everything_over_a_memory_transport_and_survives_panics() {
    let t = Memory::default();
    for (cid, mt) in [(1u64, 1u16), (2, 4), (3, 9), (4, 1)] {
        t.requests.borrow_mut().push_back((cid, mt, vec![cid as u8]));
    }
    dispatcher().serve(&t, &AtomicBool::new(false), &ServeOptions::default()).unwrap();
    let replies = t.replies.borrow();
    let types: Vec<_> = replies.iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(types, vec![(1, 1), (2, 0xFFFF), (3, 0xFFFF), (4, 1)]);
    assert_eq!(replies[3].2, vec![4]);
}
