"""Stage 2, analysis: run the analyzers (analyzers/) over the proxy and collect their signals and tokens."""
