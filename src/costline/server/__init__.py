"""The HTTP server: an app factory, auth, and routes that decode requests and call the pipeline."""
