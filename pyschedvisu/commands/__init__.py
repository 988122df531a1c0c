"""Sub-commands of the CLI; each module exposes ``register(app)``."""
