"""Integrations at the edge: LangChain (and later HTTP, Ray)."""
