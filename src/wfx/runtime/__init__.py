"""The interpreter: runs an ExecutionGraph on anyio and reports through events."""
