"""Feeds from outside taken into the declarations topic: drop folders, progress, the loop."""
