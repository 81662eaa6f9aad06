//! `type_id` packing: bits 31..16 are the route id, bits 15..0 the message type.

/// Packs a `route` and a `msg_type` into one `type_id`.
///
/// ```
/// use tachyon::{make_type_id, msg_type, route_id};
/// let t = make_type_id(3, 7);
/// assert_eq!((route_id(t), msg_type(t)), (3, 7));
/// ```
#[inline]
pub const fn make_type_id(route: u16, msg_type: u16) -> u32 {
    ((route as u32) << 16) | msg_type as u32
}

/// The route id in bits 31..16 of a `type_id`.
#[inline]
pub const fn route_id(type_id: u32) -> u16 {
    (type_id >> 16) as u16
}

/// The message type in bits 15..0 of a `type_id`.
#[inline]
pub const fn msg_type(type_id: u32) -> u16 {
    (type_id & 0xFFFF) as u16
}
