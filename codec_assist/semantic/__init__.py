"""Side path: the semantic codec (captions + side layers -> bitstream -> reconstruction)."""
