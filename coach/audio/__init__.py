"""Audio: clips, earcons, rendering a Timeline to samples, and writing files."""
