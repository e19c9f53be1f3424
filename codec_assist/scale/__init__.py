"""Side path: many videos or chunks on a local process pool or a Ray cluster."""
