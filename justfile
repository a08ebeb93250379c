# mtlkaggle tasks. `just --list` shows them; `just demo` and `just test` are the Quickstart.

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := ".venv"
bin := venv / "bin"

# Create .venv with pip and install mtlkaggle with its dev extras (quick when already done).
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    [ -x {{bin}}/python ] || python3 -m venv {{venv}}
    stamp="{{venv}}/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        # pip byte-compiles on one core; compileall on all of them saves about 20 s of the install
        {{bin}}/python -m pip install -q --disable-pip-version-check --no-compile -e '.[dev]'
        {{bin}}/python -m compileall -q -j 0 {{venv}}/lib > /dev/null || true  # as pip: a file that fails stays uncompiled
        rm -f {{venv}}/.installed-* && touch "$stamp"
    fi

# Run the whole pipeline on the built-in demo competition (2 to 2.5 minutes on 2 CPU cores, after setup).
demo: setup
    {{bin}}/mtlkaggle demo
    {{bin}}/mtlkaggle check demo
    {{bin}}/mtlkaggle folds demo
    {{bin}}/mtlkaggle train demo --fold all --overwrite
    {{bin}}/mtlkaggle predict demo --tta
    {{bin}}/mtlkaggle evaluate demo submissions/demo
    {{bin}}/mtlkaggle submit demo --dry-run
    {{bin}}/mtlkaggle report demo

# Run the test suite (all tests; `just test -m "not slow"` for the quick ones).
test *ARGS: setup
    {{bin}}/python -m pytest {{ARGS}}

# Regenerate the README's reference of the competition file from the spec's models.
spec-reference: setup
    {{bin}}/mtlkaggle spec --reference --readme README.md

# Lint with ruff.
lint: setup
    {{bin}}/ruff check src tests bench

# Print the benchmark figures measured on this machine.
bench: setup
    {{bin}}/python bench/bench_folds.py
    {{bin}}/python bench/bench_thresholds.py
    {{bin}}/python bench/bench_predict.py
    {{bin}}/python bench/bench_train.py
    {{bin}}/python bench/bench_read.py
