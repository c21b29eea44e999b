"""Calibration and quantization: calibration sets, recipes as data, vendor quantizers, recovery, report.

- `calibration`: calibration sets (shipped default, user JSONL, image folders) and validation
- `capture`: run the fp32 model over a set; save/load captured per-method inputs atomically
- `recipes`: the registry of recipe files in `qnn_backends/recipes/` (schema-validated)
- `vendor`: reaching the QNN / MediaTek quantizers without SDKs and without network access
- `pt2e`: recipe -> QnnQuantizer / NeuropilotQuantizer; export -> prepare -> calibrate -> convert
- `xnnpack`: recipe -> torchao `quantize_` on the eager model
- `recovery`: layer-wise sensitivity and the mixed-precision fallback
- `api`: `quantize_for_backend`, what the export pipeline calls
- `report`: the quality report behind `bluelm-edge eval --compare`
"""
