"""Google's Gemini API (generativelanguage v1beta) with its native protocol."""
