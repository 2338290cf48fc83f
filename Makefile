# emoji_privacy: `make demo` runs the anonymizer on the built-in demo scene, `make test` runs
# the tests (pytest, then the catkin rostests), `make test-fast` the quick tier (no tests marked ros, browser or slow; < 3 min on 2 cores).
# All run `make setup` first (idempotent: apt, venv, pip, models, catkin build).
SHELL := /bin/bash
REPO := $(abspath .)
VENV := $(REPO)/.venv
ROSENV := source $(REPO)/build/setup.bash && export ROS_HOME=$${ROS_HOME:-$(REPO)/build/ros_home} PATH=$(VENV)/bin:$$PATH
PYTEST_ARGS ?=
# ruff, and import-linter's contracts in pyproject.toml (layers only point down, no cycles): run on the source tree,
# not through the catkin workspace's package shim, with its cache in build/; its report is shown when it fails
LINT := ruff check src nodes scripts bench test && (cd src && report="$$(PYTHONPATH=. lint-imports ../pyproject.toml \
	--cache-dir ../build/import_linter_cache)" || { echo "$$report"; exit 1; })

.PHONY: setup demo test test-fast catkin-test lint bench clean
setup:
	@bash scripts/setup.sh

demo: setup
	@$(ROSENV) && python3 scripts/run_demo --out $(REPO)/demo_output

test: setup
	@$(ROSENV) && $(LINT) && python3 -m pytest test $(PYTEST_ARGS)
	@bash scripts/catkin_tests.sh

# catkin_make run_tests + catkin_test_results: the rostest hztest and the roslaunch checks (CMakeLists.txt).
catkin-test: setup
	@bash scripts/catkin_tests.sh

# The markers are registered in pyproject.toml; test/conftest.py sets ros and browser by folder, files set slow.
test-fast: setup
	@$(ROSENV) && $(LINT) && \
		python3 -m pytest test -m "not ros and not browser and not slow" $(PYTEST_ARGS)

lint: setup
	@$(ROSENV) && $(LINT)

bench: setup
	@$(ROSENV) && for b in bench/bench_*.py; do python3 $$b || exit 1; done

clean:
	[ ! -f build/setup.bash ] || rm -rf "$$(sed -n 's|^source "\(.*\)/devel/setup.bash"|\1|p' build/setup.bash)"
	rm -rf build demo_output
