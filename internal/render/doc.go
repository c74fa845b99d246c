// Package render is every command's output, one file a command: trace lines
// and JSON (trace.go), record lines (record.go), top frames (top.go),
// backlog tables and JSON (backlog.go), snapshot tables, JSON and reports
// (sockets.go, exposure.go), with the tables' layout (table.go), the output
// formats (format.go) and one vocabulary for times, families, states and
// strings (vocab.go). It reads the models (tracer.Event, live.Conn,
// topview.Frame, backlog.Report, snapshot.Socket) and never calls back
// into them.
package render
