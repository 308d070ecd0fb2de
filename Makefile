# gitgw — build, test, benchmark, demo. `make` alone lists the targets.
# sudo resets PATH to secure_path, which lacks /usr/local/go/bin: fall back to it.
GO       ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
# Tests build the binary with `go` too: keep its directory on their PATH.
export PATH := $(dir $(GO)):$(PATH)
BIN      ?= bin/gitgw
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
PREFIX   ?= /usr/local
STATICCHECK_VERSION ?= v0.8.2
# Test packages in parallel, but not more than the 2 cores CI has times two.
TESTFLAGS ?= -count=1 -timeout 30m -p 2
FUZZTIME  ?= 10s

.PHONY: help build test unit lint verify bench demo install clean fuzz

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/gitgw
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gitgw

test: lint ## every test: lint, unit, real-kernel labs (as root), short fuzzing
	$(GO) test $(TESTFLAGS) ./...
	$(MAKE) fuzz

unit: ## only the tests that need neither root nor peers (quick)
	$(GO) test -count=1 -short ./...

fuzz: ## run every fuzz target briefly (FUZZTIME, default 10s each)
	@git grep -l '^func Fuzz' -- '*_test.go' | while read f; do \
	  dir=./$$(dirname $$f); \
	  for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
	    echo "fuzz $$t in $$dir"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$dir || exit 1; \
	  done; \
	done

lint: ## gofmt, go vet, staticcheck, dependency rules
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

verify: ## fail on a dirty tree after go mod tidy
	$(GO) mod tidy
	git diff --exit-code -- go.mod go.sum

bench: ## benchmarks, side by side with keepalived and HAProxy (as root)
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 90m ./...

demo: build ## two gateways running gitgw.service in namespaces, narrated (as root; KEEP_LOGS=DIR)
	$(GO) run ./test/demo --gitgw $(CURDIR)/$(BIN)

install: build ## install binary, unit and example config
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/gitgw
	install -D -m 0644 packaging/gitgw.service $(DESTDIR)/etc/systemd/system/gitgw.service
	install -D -m 0644 packaging/agent.env $(DESTDIR)/etc/gitgw/agent.env.example

clean:
	rm -rf bin
