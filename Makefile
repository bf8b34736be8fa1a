# Tokenkeeper: `make run` starts the app, `make test` runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint check migrate superuser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-deps: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.run-deps

## run: install, migrate, then web (http://127.0.0.1:8000), worker and beat in the foreground
# Ctrl-C stops all three: honcho exits 130 after stopping them, which is how a run ends, not an error.
run: $(VENV)/.run-deps
	@$(BIN)/python manage.py migrate --noinput -v 0
	@$(BIN)/python manage.py ensure_local_admin
	@trap '' INT; $(BIN)/honcho --procfile Procfile.dev start || [ $$? -eq 130 ]

## test: install dev requirements and run the whole suite
test: $(VENV)/.dev-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check: lint
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python manage.py check

migrate: $(VENV)/.run-deps
	$(BIN)/python manage.py migrate --noinput

clean:
	rm -rf var/celery-broker var/celerybeat-schedule* var/metrics
