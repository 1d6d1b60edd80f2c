"""Integrations at the edge: LangChain retriever, HTTP service, Ray page engine, highlights, searchable PDF."""
