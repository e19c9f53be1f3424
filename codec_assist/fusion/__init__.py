"""Stage 3, fusion: cross-modal attention of text queries over region tokens -> the importance map."""
