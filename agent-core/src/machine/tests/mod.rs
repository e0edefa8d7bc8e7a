//! Unit tests of the state machines: plain `#[test]`s, no runtime, time passed in.

mod link;
mod outbox;
mod reports;
mod rotation;

/// The invariant, checked on the source: nothing in the machines reads a clock, draws
/// entropy or reaches a runtime, a socket, a file or the host.
#[test]
fn machines_do_no_io() {
    let sources = [
        ("mod.rs", include_str!("../mod.rs")),
        ("link.rs", include_str!("../link.rs")),
        ("outbox.rs", include_str!("../outbox.rs")),
        ("reports.rs", include_str!("../reports.rs")),
    ];
    let banned = [
        "tokio::",
        "Instant::now",
        "SystemTime",
        "from_entropy",
        "std::fs",
        "std::net",
        "std::thread",
        "dyn Storage",
        "dyn Transport",
        "dyn Api",
        "dyn Platform",
        "dyn Clock",
    ];
    for (name, src) in sources {
        for b in banned {
            assert!(!src.contains(b), "machine/{name} uses {b}");
        }
    }
}
