"""Video: streaming decode, pair batching, timing, scene cuts and encoding."""
