"""Chat prompts for the local engine: built-in turn formats and sandboxed Jinja chat templates."""
