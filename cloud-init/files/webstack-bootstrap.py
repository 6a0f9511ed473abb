#!/usr/bin/python3
"""Placeholder: the real bootstrap (fetch this node's bundle, hand it to webstack-aws apply) replaces it."""
raise SystemExit("webstack-bootstrap: placeholder, not the real bootstrap")
