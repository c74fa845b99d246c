package tracer

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/testutil"
)

// Loss splits what the kernel dropped by cause: the ring's reserve
// failures, and the programs' recursion misses as the kernel reports them
// in each program's fdinfo (recursion_misses, 5.12+; without it, Loss says
// they are not counted).
func TestLossByCause(t *testing.T) {
	testutil.RequireRoot(t)
	tr, err := New(Options{PID: uint32(os.Getpid()), RingSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for range 5 {
		c := v4conn(t)
		c.closeInOrder(t, c.client, c.server)
	}
	testutil.WaitFor(t, 5*time.Second, "ring-full loss", func() bool { return tr.Loss().RingFull > 0 })
	// Programs run for every TCP socket on the host (other tests' too):
	// the kernel's count lies between two readings of Loss.
	before := tr.Loss()
	var misses uint64
	known := false
	for _, c := range tr.progs {
		for name, p := range c.Programs {
			data, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", p.FD()))
			if err != nil {
				t.Fatalf("program %s: %v", name, err)
			}
			for line := range strings.Lines(string(data)) {
				if v, ok := strings.CutPrefix(line, "recursion_misses:"); ok {
					n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
					if err != nil {
						t.Fatalf("program %s: fdinfo line %q", name, line)
					}
					misses, known = misses+n, true
				}
			}
		}
	}
	l := tr.Loss()
	if l.RecursionKnown != known || misses < before.Recursion || misses > l.Recursion || tr.Lost() < l.Total() {
		t.Errorf("Loss %+v then %+v; the kernel's fdinfo says recursion_misses %d (reported: %v)", before, l, misses, known)
	}
}
