"""The HTTP API: patients, pathways and enrollments over FastAPI."""
