# xtrunk: make deps | test-deps | demo-deps | generate | build | deb | test | bench | demo
GO      ?= go
BIN     := bin/xtrunk
export GOFLAGS := -buildvcs=false

# The version stamped into the binary (xtrunk --version, xtrunk_build_info).
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X main.version=$(VERSION) -X main.revision=$(REVISION)

# Debian packages building and running the edge needs: clang/llvm for
# bpf2go (the BPF programs compile against bpf/headers only, -nostdinc:
# no libbpf-dev or linux-libc-dev), iproute2 for the namespace labs of
# make demo.
DEPS_PKGS := clang llvm iproute2
# The tests' real peers, and systemd-analyze for the package's units.
# Their services (Kamailio on 5060, rtpengine on NG 2223 and media
# 30000-40000, PostgreSQL) are installed without starting, then disabled:
# the tests run them as their own processes.
TEST_PKGS := sip-tester rtpengine-daemon baresip kamailio sipvicious postgresql systemd prometheus tmux openssl
TEST_SERVICES := kamailio rtpengine-daemon rtpengine-recording-daemon postgresql prometheus prometheus-node-exporter
# make demo's peers: SIPp (the PBX and the carrier) and baresip (the
# TLS + SRTP PBX). Neither ships a service.
DEMO_PKGS := sip-tester baresip

.PHONY: deps test-deps demo-deps generate check-generate build deb vet test sipgo-test bench demo clean postgres postgres-stop rules-check grafana-check noc-screenshots

deps:
	@sh deploy/apt-install.sh -- $(DEPS_PKGS)
	$(GO) mod download

test-deps: deps
	@sh deploy/apt-install.sh --no-services $(TEST_SERVICES) -- $(TEST_PKGS)

demo-deps: deps
	@sh deploy/apt-install.sh -- $(DEMO_PKGS)

generate:
	$(GO) generate ./bpf/ ./bench/media/

# The committed bpf2go output must match the C source, generated from the
# headers vendored in bpf/headers alone: check-generate runs bpf2go in a
# private mount namespace with an empty read-only tmpfs over /usr/include
# (libbpf-dev's bpf/, linux-libc-dev's linux/ and x86_64-linux-gnu/ gone),
# so a header used but not vendored fails here, not on a host without
# those packages. Where unshare is not allowed (not root) it says so and
# generates with the host's headers visible.
HIDE_HOST_HEADERS := mount --make-rprivate / && mount -t tmpfs -o ro,size=64k xtrunk-no-host-headers /usr/include

check-generate:
	@if unshare -m true 2>/dev/null; then \
		unshare -m sh -c '$(HIDE_HOST_HEADERS) && $(GO) generate ./bpf/ ./bench/media/'; \
	else \
		echo "check-generate: cannot unshare a mount namespace: the host's /usr/include stays visible"; \
		$(GO) generate ./bpf/ ./bench/media/; \
	fi
	@git diff --exit-code -- bpf/ bench/media/ || { echo "bpf2go output is stale: run 'make generate' and commit it"; exit 1; }

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/xtrunk

# dist/xtrunk_<version>_amd64.deb: /usr/bin/xtrunk, systemd units, the
# xtrunk system user, /etc/xtrunk/xtrunk.yaml from xtrunk init on first
# install (deploy/debian).
deb:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o dist/xtrunk ./cmd/xtrunk
	sh deploy/debian/build-deb.sh dist/xtrunk $(VERSION) dist

vet:
	$(GO) vet ./...

# Privileged tests (XDP, namespaces) must run: a skip is a failure here.
# The throwaway PostgreSQL is stopped whether the tests pass or not.
test: test-deps rules-check check-generate vet sipgo-test build postgres
	XTRUNK_REQUIRE_PRIVILEGED=1 $(GO) test -count=1 -timeout 25m ./... || { $(MAKE) -s postgres-stop; exit 1; }
	@$(MAKE) -s postgres-stop

# The sipgo fork (third_party/sipgo, its own module: ./... above leaves it
# out) and its tests, with the TLS certificates its tests embed made first
# (openssl; the certificates are not committed).
sipgo-test:
	cd third_party/sipgo/testdata && bash generate_certs_rsa.sh >/dev/null 2>&1
	cd third_party/sipgo && $(GO) test -count=1 ./...

# A throwaway PostgreSQL (Debian's package) for the control/store tests:
# its own cluster in $(PG_DIR), run as the postgres user (initdb refuses
# root), listening on 127.0.0.1:$(PG_PORT) only, trust auth.
PG_BIN  ?= /usr/lib/postgresql/15/bin
PG_PORT ?= 55432
PG_DIR  ?= /tmp/xtrunk-pg
export XTRUNK_TEST_POSTGRES ?= postgres://xtrunk@127.0.0.1:$(PG_PORT)/xtrunk?sslmode=disable

# The NOC's rules: promtool checks the rule files and runs their unit
# tests (deploy/prometheus/*_test.yml: ASR and NER within [0, 1] on a
# fresh Prometheus and across a counter reset). make test runs it too.
rules-check:
	promtool check rules deploy/prometheus/recording.rules.yml deploy/prometheus/alerts.rules.yml
	promtool test rules deploy/prometheus/*_test.yml

# The NOC's rules and dashboard: rules-check; a Go test
# checks the dashboard's structure (Grafana is not packaged for Debian);
# the NOC lab scrapes real api, sip and relay processes (promtool check
# metrics on their output) with a real Prometheus evaluating the rules and
# every dashboard expression (root: it builds network namespaces).
grafana-check: test-deps rules-check build
	$(GO) test -count=1 ./deploy/grafana/... ./deploy/termshot/
	XTRUNK_REQUIRE_PRIVILEGED=1 $(GO) test -count=1 -run 'TestNOCLab' ./signalling/

# The README's screenshots (docs/noc-dashboard.png, docs/xtrunk-top.png),
# drawn from the NOC lab's Prometheus and xtrunk top's tmux pane.
noc-screenshots: test-deps build
	XTRUNK_REQUIRE_PRIVILEGED=1 XTRUNK_NOC_SCREENSHOTS=docs $(GO) test -count=1 -run 'TestNOCLab' ./signalling/
	XTRUNK_REQUIRE_PRIVILEGED=1 XTRUNK_NOC_SCREENSHOTS=docs $(GO) test -count=1 -run 'TestCtlTopLab' ./cmd/xtrunk/

postgres:
	@test -x $(PG_BIN)/initdb || sh deploy/apt-install.sh --no-services postgresql -- postgresql
	@if runuser -u postgres -- $(PG_BIN)/pg_ctl -D $(PG_DIR)/data status >/dev/null 2>&1; then \
		echo "postgres: already running on 127.0.0.1:$(PG_PORT)"; \
	else \
		rm -rf $(PG_DIR) && mkdir -p $(PG_DIR) && chown postgres: $(PG_DIR) && chmod 700 $(PG_DIR) && \
		runuser -u postgres -- $(PG_BIN)/initdb -D $(PG_DIR)/data -U xtrunk --auth=trust -E UTF8 >$(PG_DIR)/initdb.log 2>&1 && \
		runuser -u postgres -- $(PG_BIN)/pg_ctl -D $(PG_DIR)/data -l $(PG_DIR)/server.log -w -t 60 \
			-o "-c listen_addresses=127.0.0.1 -p $(PG_PORT) -k $(PG_DIR) -c max_connections=200" start >/dev/null && \
		runuser -u postgres -- $(PG_BIN)/createdb -h 127.0.0.1 -p $(PG_PORT) -U xtrunk xtrunk && \
		echo "postgres: started on 127.0.0.1:$(PG_PORT) ($(PG_DIR))"; \
	fi

postgres-stop:
	@-runuser -u postgres -- $(PG_BIN)/pg_ctl -D $(PG_DIR)/data -m fast -w stop >/dev/null 2>&1; rm -rf $(PG_DIR)

# Go micro-benchmarks, then a short media benchmark (all four modes, about
# 2 minutes; the full run and its figures: BENCHMARKS.md).
bench: test-deps build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2000x ./control/ng/ ./relay/...
	./$(BIN) bench media --calls 100,1000,2000 --duration 3s --out bench-out

# A whole edge in a namespace lab, three real calls (xtrunk demo); the
# results also in demo.json.
demo: demo-deps build
	./$(BIN) demo --json demo.json

clean:
	rm -rf bin dist demo.json
