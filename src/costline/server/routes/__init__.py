"""Routes: each decodes its request and calls the pipeline or the store."""
