"""`import genzoo` imports torch and genzoo's own modules, nothing heavy that only some commands need: the optional
libraries (transformers, diffusers, matplotlib, scikit-learn, gymnasium, faiss, fastapi, ...) and torch's compiler
(torch._dynamo, which alone doubled the import time) are imported where they are used. A second `genzoo train`
refused by a run's lock answers within the import time, so this is what keeps that answer fast (issue 17)."""

import os
import subprocess
import sys
from pathlib import Path

import genzoo

HEAVY = ["transformers", "diffusers", "matplotlib", "sklearn", "scipy", "pandas", "gymnasium", "faiss", "fastapi",
         "uvicorn", "starlette", "pydantic", "peft", "sentence_transformers", "gliner", "gguf", "PIL",
         "huggingface_hub", "yaml", "torch._dynamo", "torch._inductor", "sympy"]


def test_import_genzoo_imports_no_optional_heavy_module():
    src = str(Path(genzoo.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    code = ("import sys, genzoo; heavy = %r; "
            "print(','.join(m for m in heavy if m in sys.modules))" % HEAVY)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"import genzoo imported: {out.stdout.strip()}"
    # the public names are there without importing anything more
    for name in ("build", "load", "save", "pipeline", "quantize", "GenzooError", "CheckpointError", "ConfigError",
                 "InputError", "__version__"):
        assert hasattr(genzoo, name)
