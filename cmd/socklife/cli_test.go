package main

import (
	"bytes"
	"context"
	"testing"
)

// runCLI runs socklife in-process with args and returns stdout, stderr and
// the exit status main would have used.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	if err := root.ExecuteContext(context.Background()); err != nil {
		code = exitCode(err)
		errOut.WriteString("socklife: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), code
}
