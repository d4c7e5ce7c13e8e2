"""Tests of secrets, keys, encrypted state, redaction and the secret commands."""
