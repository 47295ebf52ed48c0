"""Vertex AI: Gemini, Claude and embeddings on Google Cloud with service-account OAuth."""
