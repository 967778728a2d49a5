"""PA's election XML: hardened reading, id mapping per feed, and rendering for rehearsals."""
