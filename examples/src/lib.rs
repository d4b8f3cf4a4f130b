//! Shared pieces of the examples: the todo MCP server, app assembly, provider selection.
#![deny(missing_docs)]

pub mod app;
pub mod doctor;
pub mod downstream;
pub mod providers;
pub mod readme;
pub mod shared_store;
pub mod todo;
