//! `uniffi-bindgen`: generates the Kotlin and Swift sources of the bindings.
//!
//! `cargo run -p bindings --features cli --bin uniffi-bindgen -- generate --library
//! target/debug/libsafestream_ffi.so --language kotlin --out-dir out/`

fn main() {
    uniffi::uniffi_bindgen_main()
}
