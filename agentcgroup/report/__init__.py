"""The AgentCgroup paper's characterization of agent sessions: pure computation over
:class:`agentcgroup.traces.Task` objects (:mod:`.characterize`), rendered as Markdown (:mod:`.markdown`)
with optional matplotlib plots (:mod:`.plots`); :mod:`.run` ties them together for ``agentcg report``."""
