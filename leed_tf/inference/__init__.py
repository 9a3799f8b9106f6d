"""Inference: the editor, the serving module and its export, serving
clients, and the expression bank (docs/design.md section 3)."""
