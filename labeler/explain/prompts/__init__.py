"""Prompt texts of the explainers, kept apart from the code that fills them in."""
