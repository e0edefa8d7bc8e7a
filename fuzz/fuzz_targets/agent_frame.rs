//! The agent's handling of relay frames: `agent_core::fuzz_relay_frame` (parse + command
//! validation, as the connection does) and the `device:status` frame it builds from a
//! host-provided `currentVideo`. No input may panic; the built frame is valid JSON within
//! the relay's 2 KiB `currentVideo` limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let outcome = agent_core::fuzz_relay_frame(text);
    assert!(!outcome.is_empty());
    let frame =
        agent_core::fuzz_device_status_frame(data.first().is_some_and(|b| b & 1 == 1), text);
    let v: serde_json::Value = serde_json::from_str(&frame).expect("device:status is JSON");
    assert_eq!(v["event"], "device:status");
    let video = &v["data"]["currentVideo"];
    assert!(
        video.is_null() || video.to_string().len() <= 2048,
        "currentVideo over the relay's limit: {} bytes",
        video.to_string().len()
    );
});
