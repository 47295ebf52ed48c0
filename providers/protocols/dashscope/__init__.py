"""DashScope's native HTTP API, for the model types its OpenAI-compatible mode lacks (rerank, Qwen-TTS)."""
