# xtrunk: make deps | generate | build | test | bench | demo
GO      ?= go
BIN     := bin/xtrunk
export GOFLAGS := -buildvcs=false

# Debian packages the build and the tests need (real peers in namespace labs).
DEB_PKGS := clang llvm libbpf-dev linux-libc-dev iproute2 bpftool \
	        sip-tester rtpengine-daemon baresip kamailio sipvicious

.PHONY: deps generate check-generate build vet test bench demo clean postgres postgres-stop

deps:
	@missing=""; for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	$(GO) mod download

generate:
	$(GO) generate ./bpf/ ./bench/media/

# The committed bpf2go output must match the C source.
check-generate: generate
	@git diff --exit-code -- bpf/ bench/media/ || { echo "bpf2go output is stale: run 'make generate' and commit it"; exit 1; }

build:
	$(GO) build -o $(BIN) ./cmd/xtrunk

vet:
	$(GO) vet ./...

# Privileged tests (XDP, namespaces) must run: a skip is a failure here.
# The throwaway PostgreSQL is stopped whether the tests pass or not.
test: deps check-generate vet build postgres
	XTRUNK_REQUIRE_PRIVILEGED=1 $(GO) test -count=1 -timeout 25m ./... || { $(MAKE) -s postgres-stop; exit 1; }
	@$(MAKE) -s postgres-stop

# A throwaway PostgreSQL (Debian's package) for the control/store tests:
# its own cluster in $(PG_DIR), run as the postgres user (initdb refuses
# root), listening on 127.0.0.1:$(PG_PORT) only, trust auth.
PG_BIN  ?= /usr/lib/postgresql/15/bin
PG_PORT ?= 55432
PG_DIR  ?= /tmp/xtrunk-pg
export XTRUNK_TEST_POSTGRES ?= postgres://xtrunk@127.0.0.1:$(PG_PORT)/xtrunk?sslmode=disable

postgres:
	@test -x $(PG_BIN)/initdb || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; }
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
bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2000x ./control/ng/ ./relay/...
	./$(BIN) bench media --calls 100,1000,2000 --duration 3s --out bench-out

demo: deps build
	./$(BIN) demo

clean:
	rm -rf bin
