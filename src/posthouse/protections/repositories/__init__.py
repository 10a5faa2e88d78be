"""The protections' SQL, one repository per concern."""
