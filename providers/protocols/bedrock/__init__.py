"""AWS Bedrock: Converse / ConverseStream, InvokeModel embeddings and agent-runtime rerank."""
