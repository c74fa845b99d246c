package runtimes

import (
	"context"
	"sort"
	"sync"
)

// Status is what Probe found at one runtime socket.
type Status struct {
	// Runtime whose containers this socket names; "" for the
	// --runtime-endpoint, which names every runtime's.
	Runtime  string
	Endpoint string // socket path
	Protocol string // "cri" or "docker"; "" when it did not answer
	// Name and Version are the runtime's own words: "containerd"
	// "1.6.20~ds1", "Podman Engine" "4.3.1".
	Name, Version string
	// Err says why it did not answer; errors.Is(Err, fs.ErrNotExist)
	// when there is no socket at all.
	Err error
}

// Probe asks every socket the Namer would use, at once, each within the
// Namer's timeout, for socklife info. It is independent of Lookup's
// connections and marks nothing down.
func (n *Namer) Probe(ctx context.Context) []Status {
	out := make([]Status, 0, len(n.backends))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for rt, b := range n.backends {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, n.timeout)
			defer cancel()
			st := Status{Runtime: rt, Endpoint: b.path}
			cl, proto, name, version, err := connect(ctx, b.path, b.initialProto)
			if err == nil {
				cl.close()
				st.Protocol, st.Name, st.Version = string(proto), name, version
			}
			st.Err = err
			mu.Lock()
			out = append(out, st)
			mu.Unlock()
		})
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].Runtime < out[j].Runtime })
	return out
}
