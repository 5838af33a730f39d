"""Ingestion: decoders that turn request bodies into events (pure), and the one pipeline that merges,
prices and stores them."""
