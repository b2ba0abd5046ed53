"""Metrics that must give identical numbers across methods, each tested against its reference tool."""
