# Two commands on a fresh machine:
#   make demo   set up and run the main job on config.toml and the example pages
#   make test   set up and run the whole test suite (what .ci/run runs)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test setup lint system-deps bench clean catalog

$(BIN)/gongbao-feed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/gongbao-feed

# Debian packages the tests drive for real (feed schema validator, browser,
# PostgreSQL server: the tests start their own, no system cluster needed).
system-deps:
	@missing=""; \
	for pkg in $(SYSTEM_PACKAGES); do dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

SYSTEM_PACKAGES ?= jing chromium fonts-noto-cjk spamassassin postgresql

# The main job on the embedded defaults: pages in, issue, feeds, archive,
# digests in the outbox. Run it again and it finds nothing new to send.
demo: setup
	$(BIN)/gongbao-feed members import examples/members.csv --config config.toml
	$(BIN)/gongbao-feed run --once --config config.toml
	@echo "feeds and archive: public/index.html   digests: outbox/"

lint: setup
	$(BIN)/ruff check .

test: setup system-deps lint
	$(BIN)/python -m pytest -n 2 -q

bench: setup
	$(BIN)/python bench/parse.py
	$(BIN)/python bench/feeds.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/outbox.py
	$(BIN)/python bench/smtp.py
	$(BIN)/python bench/workers.py

# The operator's messages in Chinese (README, "Language of messages"):
# extract every message from the source into the template, merge it into
# the zh_CN catalog (new msgids come in untranslated, changed ones fuzzy),
# then compile the .mo that source checkouts read. Run it after changing a
# message, translate what tests/test_i18n.py lists, run it again.
LOCALES  := gongbao_feed/locale
CATALOG  := $(LOCALES)/zh_CN/LC_MESSAGES/gongbao_feed.po
KEYWORDS := --no-default-keywords -k _ -k ngettext:1,2 -k N_ -k N_plural:1,2

catalog: setup
	$(BIN)/pybabel extract -F babel.cfg $(KEYWORDS) --add-location=file --sort-output \
	  --project=gongbao-feed --version=0.1 --msgid-bugs-address= -w 100 \
	  -o $(LOCALES)/gongbao_feed.pot .
	test -f $(CATALOG) || $(BIN)/pybabel init -i $(LOCALES)/gongbao_feed.pot -d $(LOCALES) \
	  -D gongbao_feed -l zh_CN -w 100
	$(BIN)/pybabel update -i $(LOCALES)/gongbao_feed.pot -d $(LOCALES) -D gongbao_feed -l zh_CN \
	  -w 100 --ignore-obsolete
	$(BIN)/pybabel compile -d $(LOCALES) -D gongbao_feed -l zh_CN --statistics

clean:
	rm -rf $(VENV) state public outbox .pytest_cache .ruff_cache .hypothesis
