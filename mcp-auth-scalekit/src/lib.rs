//! mcp-auth-scalekit (being built).
