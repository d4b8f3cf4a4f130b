//! mcp-auth-jwt (being built).
