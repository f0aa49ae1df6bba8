"""Voice: speech engines, text normalization, trimming and the clip cache."""
