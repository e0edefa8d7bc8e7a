//! SafeStream agent core (placeholder until the agent-core issue lands).
