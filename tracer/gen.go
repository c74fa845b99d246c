package tracer

// The BPF object and its Go bindings are committed, so `go build` needs no
// clang; run `go generate ./tracer/` after changing anything under bpf/.
// amd64 only: the kretprobe reads registers through x86's struct pt_regs.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type event -type event_kind -type event_hook -type event_flag -type lost_slot -type conn_totals -type close_wait -type accept_key -type accept_totals -type tuple socklife ../bpf/socklife.bpf.c -- -I../bpf
