"""The HTTP server: the only package that imports Starlette/FastAPI."""
