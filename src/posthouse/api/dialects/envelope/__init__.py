"""Seed 004's email API ("envelope"): routes.py and errors.py, as api/native/."""
