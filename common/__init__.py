"""Thin layer shared by every method: data formats, metrics, custom ops and run plumbing.

Code lives here only when two or more methods need it, or when numbers must be identical across methods.
"""
