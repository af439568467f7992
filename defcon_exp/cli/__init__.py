"""Thin console entry points."""
