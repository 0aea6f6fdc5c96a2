"""Prompt processing: view-dependent prompts and cached text embeddings."""
