# Two commands do all the set-up: `make demo` (train the default preset for ~2 minutes on CPU)
# and `make test`. Both make a virtual environment in .venv on first use.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of PyTorch. Users with a GPU: install torch your usual way into .venv first
# (or run `make TORCH="torch==2.13.0 --index-url ..."`); an importable torch is kept as it is.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
DEMO_DIR ?= runs/demo

.PHONY: demo test install clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install $(TORCH)
	$(BIN)/pip install -e ".[dev]"
	touch $@

demo: install
	rm -rf $(DEMO_DIR)
	$(BIN)/gankit train --out $(DEMO_DIR)
	$(BIN)/gankit interpolate $(DEMO_DIR) --out $(DEMO_DIR)/interpolation.gif
	@echo "open $(DEMO_DIR)/report.html (or progress.gif, samples/, losses.png)"

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache
