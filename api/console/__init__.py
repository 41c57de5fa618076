"""The staff console at /console/: server-rendered pages over the API's own functions (see pages.py)."""
