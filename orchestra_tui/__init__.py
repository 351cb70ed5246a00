"""orchestra-tui: Orchestrator-8B as a live, cost-aware terminal agent."""

__version__ = "0.1.0"
