# Kestrel developer tasks. Everything runs inside the locked environment made by ./dev.
# `make` (or `make help`) lists the targets.
.DEFAULT_GOAL := help
.PHONY: help env demo test check format lint types imports schema docs bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

env: ## make or refresh .venv from uv.lock
	@./dev run true

demo: ## run the main job (kestrel demo)
	@./dev demo

test: ## run the whole test suite
	@./dev test

check: ## format check, lint, types, import contracts, generated docs, tests
	@./dev check

format: ## format the code (ruff format + import sorting)
	@./dev run ruff format src tests benchmarks scripts
	@./dev run ruff check --select I --fix src tests benchmarks scripts

lint: ## ruff lint
	@./dev run ruff check src tests benchmarks scripts

types: ## mypy (strict on kestrel.core)
	@./dev run mypy

imports: ## layer contracts (import-linter)
	@./dev run lint-imports --no-cache

schema: ## regenerate config/kestrel.schema.json and docs/configuration.md
	@./dev kestrel config schema --out config/kestrel.schema.json
	@./dev run python scripts/config_docs.py

bench: ## run every benchmark (JSON on stdout)
	@for b in benchmarks/*.py; do echo "== $$b"; ./dev run python $$b || exit 1; done

clean: ## remove caches (keeps .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache
