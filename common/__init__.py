"""Pieces every process uses: framing, envelopes, hashing, config, logging, storage."""
