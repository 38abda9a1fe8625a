"""`wfx lsp`: a language server for workflow files.

The features are pure functions of a text and a position (``analysis``, ``context``,
``features``), testable without a client; ``server`` wires them to pygls, which is
imported only there (``pip install 'wfx[lsp]'``).
"""
