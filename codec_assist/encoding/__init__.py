"""Stage 5, encoding: the x264/x265 bridge through PyAV (ROI side data, forced IDRs, zones), chunked encodes."""
