"""Readers and generators for the real on-disk dataset formats shared by several methods."""
