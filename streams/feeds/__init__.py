"""Feeds from outside the project: each turns a provider's files into our declarations."""
