"""Side path: topic tags for short videos and the presets they choose."""
