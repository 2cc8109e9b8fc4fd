"""TinyML on the wearables: int8 LiteRT models run in fleet batches."""
