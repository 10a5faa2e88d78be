"""Seed 003's messages API ("sendclean"): routes.py, schemas.py and errors.py, as api/native/."""
