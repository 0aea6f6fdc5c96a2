"""The embedded teacher: procedural objects, their renders and prompts (DESIGN.md §6)."""
