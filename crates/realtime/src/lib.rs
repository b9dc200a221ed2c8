//! Realtime hub and event bus (placeholder until the hub lands).
