"""A FastAPI service that browses SQLite databases through the async core."""
