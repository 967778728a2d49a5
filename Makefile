# Shortcuts for the everyday commands; `make` alone lists them. The README's scripts stay
# the source of truth: these targets only call them (or the venv's tools) the same way.

VENV := .venv/bin

.DEFAULT_GOAL := help
.PHONY: help setup services lint type test-unit test check-wheel check-lowest bench

help: ## List the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) \
		| awk 'BEGIN {FS = ":.*## "}; {printf "  %-13s %s\n", $$1, $$2}'

setup: ## Create .venv with the project installed, and the Debian packages the tests need
	bash scripts/setup.sh

services: ## Start the local Kafka and Redis (prints their URLs; harmless when they run)
	$(VENV)/python -m scripts.services start

lint: ## Ruff: lint and formatting check
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .

type: ## Mypy over streams, schemas and scripts
	$(VENV)/mypy

test-unit: ## Fast unit tests, without the slow property tests (no services needed)
	$(VENV)/pytest tests/unit -m "not slow"

test: ## The full suite as CI runs it: set-up, services, lint, types and every test
	bash scripts/test.sh

check-wheel: ## Build the wheel, install it in a new virtualenv, run the night and the page from it
	bash scripts/check_wheel.sh

check-lowest: ## The unit tests on the lowest dependency versions pyproject.toml allows
	bash scripts/check_lowest.sh

bench: ## End-to-end benchmark through real workers, Kafka and Redis (after make services)
	$(VENV)/python -m scripts.bench
