//! mcp-auth-workos (being built).
