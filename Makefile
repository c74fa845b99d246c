# socklife — build, test and benchmark.
#
#   make run     build, then run socklife (ARGS="snapshot -tl" by default)
#   make test    vet, format check, all tests (root runs the kernel tests);
#                make check-generate rebuilds the BPF objects (clang) and diffs them
#   make fuzz    every fuzz target for FUZZTIME (10s) each; CI runs it before make test
#   make bench   the benchmarks, with ratios against ss and bpftrace measured in the same run
#   make image   the container image (deploy/Dockerfile) with podman, from bin/socklife

GO       ?= go
BIN      := bin/socklife
VERSION  := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.Version=$(VERSION)
ARGS     ?= snapshot -tl

.PHONY: all build run test unit vet fmt-check fuzz generate vmlinux check-generate bench vmtest image clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/socklife

run: build
	./$(BIN) $(ARGS)

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# The BPF objects are committed so that `go build` needs no clang; this
# rebuilds them (installing clang and the libbpf headers if missing).
generate:
	@command -v clang >/dev/null && [ -f /usr/include/bpf/bpf_helpers.h ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang llvm libbpf-dev)
	$(GO) generate ./...

# bpf/vmlinux.h is committed too; this remakes it from the running kernel.
vmlinux:
	@command -v bpftool >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bpftool)
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/vmlinux.h

# Regenerating must change nothing that is committed.
check-generate: generate
	git diff --exit-code -- bpf/ tracer/

# -p 1: the kernel tests of one package must not share the two cores and the
# host's network stack with another's (the backlog test times accept waits).
test: vet fmt-check
	$(GO) test -count=1 -p 1 ./...

# Each fuzz target for a short while on top of its seed corpus (the seeds
# alone run in make test, as ordinary tests). go test fuzzes one target a
# run: the list is every func Fuzz* in the tree, found afresh. CI runs this
# on its own, outside make test. The budget is a count of executions, not a
# duration: Go 1.26's coordinator can report a duration's end as a failure
# ("context deadline exceeded", no failing input; golang/go#75804, fixed in
# 1.27), and here its workers sat at 0 execs/s for the rest of a 10s budget.
# Fifteen targets at 50000 executions take about a minute and a half.
FUZZTIME ?= 50000x
fuzz:
	@set -e; git grep -l '^func Fuzz' -- '*_test.go' | while read -r f; do \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "== $$t ./$$(dirname $$f)"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./$$(dirname $$f); \
		done; \
	done

unit:
	$(GO) test -count=1 -short ./...

# Every benchmark once: each runs its own rounds, interleaving socklife with
# its peer (ss, bpftrace) so that ratios come from the same run. Needs root,
# ss and bpftrace (apt-get install bpftrace); takes a few minutes. -v keeps
# go test from cutting the tables the benchmarks log to ten lines. The second
# run is BenchmarkServeScale again at a million sockets, for serve's RSS there
# (two or three minutes more, and about 5 GiB of memory while it runs).
bench:
	$(GO) test -count=1 -v -run '^$$' -bench . -benchtime 1x -timeout 30m ./...
	SOCKLIFE_BENCH_SCALE_SOCKETS=1000000 $(GO) test -count=1 -v -run '^$$' -bench '^BenchmarkServeScale$$' -benchtime 1x -timeout 15m ./cmd/socklife

# The privileged tests inside Debian 5.10, 6.1 and 6.12 under QEMU (the matrix in
# internal/cmd/vmtest/kernels.txt): `make vmtest`, or KERNEL=6.1 for one, ACCEL=tcg to
# skip the KVM probe, VMTEST_FLAGS for more (go run ./internal/cmd/vmtest -h).
vmtest:
	$(GO) run ./internal/cmd/vmtest $(if $(KERNEL),-kernel '$(KERNEL)') $(if $(ACCEL),-accel '$(ACCEL)') $(VMTEST_FLAGS)

# FROM scratch around the static binary of `build`: deploy/Dockerfile says why
# the binary is built here and not in a build stage. The context is the
# binary's directory alone. PODMAN may carry global flags (deploy's test
# builds into storage of its own).
IMAGE  ?= localhost/socklife:$(VERSION)
PODMAN ?= podman
image: build
	$(PODMAN) build -f deploy/Dockerfile --build-arg VERSION=$(VERSION) -t $(IMAGE) $(dir $(BIN))

clean:
	rm -rf bin
