//! Siteplan SVG engine (placeholder until the engine lands).
