package snapshot

import (
	"sync"
	"time"
)

// Notes about what a walk of the namespaces skipped are said once per
// process, whatever number of dumps a long-running command makes: top
// refreshing every two seconds must not repeat, each time, that
// /run/netns/x is no namespace.
var notes struct {
	sync.Mutex
	said map[string]bool
	to   func(msg string)
}

// SetNotes sends the notes to fn as they come (a long-running command's
// stderr) instead of into Result.Warnings, which such commands do not
// read. nil returns them to Result.Warnings.
func SetNotes(fn func(msg string)) {
	notes.Lock()
	defer notes.Unlock()
	notes.to = fn
}

// note says msg under key unless it was said before: to SetNotes's
// function, or appended to pending.
func note(key, msg string, pending *[]string) {
	notes.Lock()
	defer notes.Unlock()
	if notes.said[key] {
		return
	}
	if notes.said == nil {
		notes.said = make(map[string]bool)
	}
	notes.said[key] = true
	if notes.to != nil {
		notes.to(msg)
		return
	}
	*pending = append(*pending, msg)
}

// staleAfter is how long a /run/netns entry may be a plain file before it
// is said to be stale: `ip netns add` creates the file and bind-mounts the
// namespace on it a moment later, and `ip netns del` unmounts before it
// unlinks, so under churn every walk meets such files in passing.
const staleAfter = time.Second
