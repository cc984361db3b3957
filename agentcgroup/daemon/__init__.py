"""The agentcgroup daemon: one controller per host, serving agent sessions over a Unix socket."""
