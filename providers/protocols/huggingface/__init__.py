"""Hugging Face (Dify's huggingface_hub): TGI-style text generation and feature extraction, serverless or on Inference Endpoints."""
