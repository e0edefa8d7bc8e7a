//! The relay's Socket.IO packet decoding (`relay::sio::packet`): arbitrary text as an
//! Engine.IO packet from a client. No input may panic it; what it turns into a native frame
//! (an event, the CONNECT's `auth`) must be a native frame; a frame read back
//! for sending must turn into a packet that decodes as the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay::sio::packet::{self, Frame, Incoming};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match packet::parse(text) {
        Incoming::Event { frame, .. } => {
            // Syntactically JSON; its data may still be beyond `Value` (a number out of
            // range), which the session answers as a malformed frame.
            let Ok(f) = serde_json::from_str::<wire::Frame<Value>>(&frame) else {
                return;
            };
            // Sent back out, it reads as the same event with the same data.
            let out = Frame::read(&frame).expect("readable").to_packet(None);
            match packet::parse(&format!("4{}", &out[1..])) {
                Incoming::Event { frame: again, .. } => {
                    let g: wire::Frame<Value> = serde_json::from_str(&again).expect("again");
                    assert_eq!((f.event, f.data), (g.event, g.data));
                }
                other => panic!("{out} decoded as {other:?}"),
            }
        }
        Incoming::Connect(auth) => {
            let f: wire::Frame<Value> = serde_json::from_str(&auth).expect("an auth frame");
            assert_eq!(f.event, wire::event::AUTH);
        }
        _ => {}
    }
    let _ = packet::connect_pid(text);
    if let Some(f) = Frame::read(text) {
        let _ = f.to_packet(f.offset);
    }
});
