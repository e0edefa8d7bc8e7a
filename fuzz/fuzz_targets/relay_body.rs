//! The relay's REST body decoding and validation: every JSON-body endpoint, called
//! in-process through the real router with a caller allowed to use it, with arbitrary
//! bytes as the body and a chosen `Content-Type`. No input may panic or answer 500, and
//! every refusal is the documented JSON error shape with a documented status. The same
//! body also goes straight to the `wire` crate's typed parser for that endpoint: whatever it
//! accepts must serialize back to JSON that parses to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::rest::{
    AckCommand, ApprovePairing, ClaimPairing, CreateCommand, CreateDevice, CreateNotification,
    CreatePairing, FromBody, Publish, PutChild, RestrictedAttempt, ScreenTimeReport,
};

/// `T` accepts `v` only if it accepts its own serialization as the same value.
fn round_trip<T: FromBody + serde::Serialize + PartialEq + std::fmt::Debug>(v: &serde_json::Value) {
    if let Ok(t) = T::from_body(v) {
        let again = serde_json::to_value(&t).expect("a typed body serializes");
        assert_eq!(T::from_body(&again).as_ref(), Ok(&t), "{again}");
    }
}

mod common;

const DOCUMENTED: [u16; 10] = [400, 401, 403, 404, 409, 410, 413, 415, 429, 503];

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let w = common::world();
    let (sel, ct, body) = (data[0], data[1], data[2..].to_vec());
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
        match sel % 13 {
            0 | 1 => round_trip::<PutChild>(&v),
            2 => round_trip::<CreateDevice>(&v),
            3 => round_trip::<CreateCommand>(&v),
            4 => round_trip::<AckCommand>(&v),
            5 => round_trip::<CreateNotification>(&v),
            6 => round_trip::<ScreenTimeReport>(&v),
            7 => round_trip::<RestrictedAttempt>(&v),
            8 => round_trip::<Publish>(&v),
            9 => round_trip::<CreatePairing>(&v),
            10 => round_trip::<ClaimPairing>(&v),
            11 => round_trip::<ApprovePairing>(&v),
            _ => {}
        }
    }
    let cmd = format!("/api/dashboard/remote-control/{}", w.command);
    let approve = format!("/api/pairing/{}/approve", w.pairing);
    let reject = format!("/api/pairing/{}/reject", w.pairing);
    let p = Some(w.parent.as_str());
    let d = Some(w.device.as_str());
    let b = Some(common::SERVER_KEY);
    let (method, path, who): (&str, &str, Option<&str>) = match sel % 13 {
        0 => ("PUT", "/api/children/c1", p),
        1 => ("PUT", "/api/children/c1", b),
        2 => ("POST", "/api/children/c1/devices", p),
        3 => ("POST", "/api/dashboard/remote-control", p),
        4 => ("PATCH", &cmd, d),
        5 => ("POST", "/api/dashboard/notifications", b),
        6 => ("POST", "/api/dashboard/screen-time", d),
        7 => ("POST", "/api/devices/me/restricted-attempts", d),
        8 => ("POST", "/api/publish", b),
        9 => ("POST", "/api/pairing", None),
        10 => ("POST", "/api/pairing/claim", p),
        11 => ("POST", &approve, p),
        _ => ("POST", &reject, p),
    };
    let content_type = match ct % 4 {
        0 => Some("application/json"),
        1 => None,
        2 => Some("application/merge-patch+json; charset=utf-8"),
        _ => Some("text/plain"),
    };
    // A different source address each time, so the per-address pairing limit does not
    // hide the body validation behind 429s.
    let n = u32::from_le_bytes([data[0], data[1], body.len() as u8, (body.len() >> 8) as u8]);
    let ip = [10, (n >> 16) as u8, (n >> 8) as u8, n as u8];
    let (status, v) = w.rt.block_on(common::call(
        &w.router,
        method,
        path,
        who,
        content_type,
        body,
        ip,
    ));
    assert_ne!(status, 500, "{method} {path}: 500 {v}");
    if status >= 400 {
        assert!(
            DOCUMENTED.contains(&status),
            "{method} {path}: undocumented {status} {v}"
        );
        assert!(
            v["error"]["code"].is_string(),
            "{method} {path}: {status} without the error shape: {v}"
        );
    }
});
