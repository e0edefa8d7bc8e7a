//! End-to-end test support (agents against the real relay).
