"""Graph forms: what each backend exports, built from the one `BlueLM`.

Sits below `quant/` and `export/`: nothing here imports them (only `bluelm_edge.contract`, the
leaf module of names). `methods` owns the exportable wrappers (one per contract method), their example
inputs, dynamic shapes and `torch.export`; `xnnpack` owns the XNNPACK source transform (ExecuTorch's
LLM custom ops: attention over the filled cache only, the cache written in place); `forms` picks
the form a backend runs.
"""
