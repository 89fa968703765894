# xtrunk: make deps | generate | build | test | bench | demo
GO      ?= go
BIN     := bin/xtrunk
export GOFLAGS := -buildvcs=false

# Debian packages the build and the tests need (real peers in namespace labs).
DEB_PKGS := clang llvm libbpf-dev linux-libc-dev iproute2 bpftool \
	        sip-tester rtpengine-daemon

.PHONY: deps generate check-generate build vet test bench demo clean

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
	$(GO) generate ./bpf/

# The committed bpf2go output must match the C source.
check-generate: generate
	@git diff --exit-code -- bpf/ || { echo "bpf2go output is stale: run 'make generate' and commit it"; exit 1; }

build:
	$(GO) build -o $(BIN) ./cmd/xtrunk

vet:
	$(GO) vet ./...

# Privileged tests (XDP, namespaces) must run: a skip is a failure here.
test: deps check-generate vet build
	XTRUNK_REQUIRE_PRIVILEGED=1 $(GO) test -count=1 -timeout 25m ./...

bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2000x ./control/ng/ ./relay/...

demo: deps build
	./$(BIN) demo

clean:
	rm -rf bin
