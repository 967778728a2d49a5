"""Election-night stream processor: Faust agents, Redis tallies, alert detectors and web views."""
