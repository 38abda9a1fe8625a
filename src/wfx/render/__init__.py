"""Presentation: diagnostics, plans and events turned into text, Markdown, JSON and more.

The only package that knows about screens and formats; it reads data and changes nothing.
"""
