"""Data below `train/` and `quant/`: the synthetic tasks (`tasks`, their images drawn by `images`)
and chat messages from tasks and user JSONL files (`chats`). Imports nothing above `model/`,
`text/` and `validate`."""
