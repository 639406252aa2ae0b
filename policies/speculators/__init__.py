"""Speculative-decoding policies: how many draft tokens each decoding request proposes."""
