"""Side path: plans as files other encoders read (zones, SVT-AV1 ROI map, addroi, npy, CSV)."""
