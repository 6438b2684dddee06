"""Prompt texts of the LLM scorers, one module per scorer."""
