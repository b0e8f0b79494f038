"""The public API's functions: reading captures (one, many, live) into tables."""
