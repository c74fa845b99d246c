package render

// format.go: the -o formats every command shares, and JSON streaming.

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Format is the value of -o/--
type Format string

const (
	Table  Format = "table"
	JSON   Format = "json"   // one document (an array for lists)
	NDJSON Format = "ndjson" // one object per line
)

// ParseFormat checks an -o value against the formats a command offers and
// names them all when it does not match.
func ParseFormat(s string, valid ...Format) (Format, error) {
	f := Format(strings.ToLower(strings.TrimSpace(s)))
	if slices.Contains(valid, f) {
		return f, nil
	}
	names := make([]string, len(valid))
	for i, v := range valid {
		names[i] = string(v)
	}
	return "", fmt.Errorf("unknown output format %q (valid: %s)", s, strings.Join(names, ", "))
}

// WriteJSONList writes n values as one JSON array, one element per line,
// encoding each as it goes so that a list of 100,000 sockets never exists as
// one byte slice. With ndjson it writes one object per line instead.
func WriteJSONList(w io.Writer, ndjson bool, n int, elem func(i int) any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if ndjson {
		for i := 0; i < n; i++ {
			if err := enc.Encode(elem(i)); err != nil {
				return err
			}
		}
		return nil
	}
	if _, err := io.WriteString(w, "["); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		sep := ",\n"
		if i == 0 {
			sep = "\n"
		}
		if _, err := io.WriteString(w, sep); err != nil {
			return err
		}
		// Encode appends a newline; the separator above already broke the line.
		b, err := json.Marshal(elem(i))
		if err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, "\n]\n")
	return err
}
