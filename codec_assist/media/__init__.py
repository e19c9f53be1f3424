"""Stage 1, media: probe and decode with PyAV, analysis proxy frames, subtitle streams, safe output files."""
