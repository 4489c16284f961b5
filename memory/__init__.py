"""Session stores and context-window policies (planned: see the README roadmap)."""
