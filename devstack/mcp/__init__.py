"""devstack mcp: the running stack as MCP tools for coding agents (issue 19)."""
