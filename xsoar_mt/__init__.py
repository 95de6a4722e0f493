"""xsoar-mt: upgrade orchestrator for Cortex XSOAR 6.x multi-tenant deployments."""

__version__ = "0.1.0"
