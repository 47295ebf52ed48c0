"""OpenAI's HTTP API, shared by OpenAI and every OpenAI-compatible provider."""
