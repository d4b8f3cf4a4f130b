//! mcp-auth-introspect (being built).
