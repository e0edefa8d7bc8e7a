//! uniffi bindings over agent-core (placeholder until the mobile issue lands).
