"""Test-wide settings. Fixtures that several test files share live here (session scope)."""

from __future__ import annotations

import os

# The executorch wheel tries to DOWNLOAD the QNN SDK when QNN_SDK_ROOT is unset; tests never
# touch the network. A real SDK for the lowering tests can be given as BLUELM_TEST_QNN_SDK_ROOT.
os.environ["QNN_SDK_ROOT"] = os.environ.get("BLUELM_TEST_QNN_SDK_ROOT", "")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
