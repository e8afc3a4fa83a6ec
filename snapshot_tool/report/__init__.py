"""Renderers of one :class:`ComparisonResult`: rich console tables, JSON, JUnit XML and
Markdown.

Renderers build values (rich renderables, dicts, strings); only the CLI prints them.
"""
