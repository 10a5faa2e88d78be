"""Seed 002's transactional mail API ("everlytic"): routes.py, errors.py and schemas.py."""
