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
NFPM_VERSION ?= v2.48.0
# A Debian version: 0~gitYYYYMMDD.N+HASH sorts by commit date and count.
DEB_VERSION ?= 0~git$(shell git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || echo 0).$(shell git rev-list --count HEAD 2>/dev/null || echo 0)+$(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
DEB_DIR  ?= bin
# Test packages in parallel, but not more than the 2 cores CI has times two.
TESTFLAGS ?= -count=1 -timeout 30m -p 2
FUZZTIME  ?= 10s

.PHONY: help build test unit lint verify bench demo install deb clean fuzz

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

# The package's binary is built as Debian builds Go: PIE, full RELRO.
deb: ## a Debian package in bin/ (nfpm): binary, unit, conffile, man pages, completions
	@stage=$$(mktemp -d) && trap 'rm -rf $$stage' EXIT && \
	  $(GO) build -trimpath -buildmode=pie -ldflags '$(LDFLAGS) -linkmode=external -extldflags "-Wl,-z,relro,-z,now"' -o $$stage/gitgw ./cmd/gitgw && \
	  sed 's|/usr/local/bin/gitgw|/usr/bin/gitgw|g; s|installed by `make install` as /etc/systemd/system/gitgw.service|installed by the Debian package as /lib/systemd/system/gitgw.service|I' packaging/gitgw.service >$$stage/gitgw.service && \
	  $$stage/gitgw manpages $$stage/man && gzip -9n $$stage/man/*.1 && \
	  mkdir $$stage/completion && for sh in bash zsh fish; do $$stage/gitgw completion $$sh >$$stage/completion/gitgw.$$sh; done && \
	  printf 'gitgw ($(DEB_VERSION)) unstable; urgency=medium\n\n  * Built from commit %s by make deb.\n\n -- gitgw developers <gitgw@example.net>  %s\n' \
	    "$$(git rev-parse HEAD 2>/dev/null || echo unknown)" "$$(date -R -d @$$(git log -1 --format=%ct 2>/dev/null || date +%s))" | gzip -9n >$$stage/changelog.gz && \
	  mkdir -p $(DEB_DIR) && \
	  sed "s|\$${DEB_STAGE}|$$stage|g; s|\$${DEB_VERSION}|$(DEB_VERSION)|g" packaging/nfpm.yaml >$$stage/nfpm.yaml && \
	  $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION) \
	    package --config $$stage/nfpm.yaml --packager deb --target $(DEB_DIR)/gitgw_$(DEB_VERSION)_amd64.deb

clean:
	rm -rf bin
