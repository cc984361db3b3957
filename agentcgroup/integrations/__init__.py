"""Adapters for the agents people already run: mini-swe-agent, Docker sandboxes, a bash shim, pre-tool hooks."""
