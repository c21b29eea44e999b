"""Text side of the model: tokenizer, chat template and thinking-budget control."""
