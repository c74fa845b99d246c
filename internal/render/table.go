package render

import (
	"io"
)

// Column is one table column.
type Column struct {
	Title string
	Right bool // right-align (numbers)
}

// RowFunc appends the cells of row i to buf and the end offset of each cell
// to ends, returning both. Appending into caller-owned buffers lets a table
// of 100,000 rows render with no allocation per row.
type RowFunc func(i int, buf []byte, ends []int) ([]byte, []int)

// WriteTable writes n rows under cols, each column as wide as its widest
// cell, separated by two spaces (one after the last left-aligned column is
// dropped). Rows are formatted twice, once to measure and once to write,
// rather than kept in memory.
func WriteTable(w io.Writer, cols []Column, n int, row RowFunc) error {
	widths := make([]int, len(cols))
	for c, col := range cols {
		widths[c] = len(col.Title)
	}
	var buf []byte
	var ends []int
	for i := 0; i < n; i++ {
		buf, ends = row(i, buf[:0], ends[:0])
		start := 0
		for c, end := range ends {
			if c < len(widths) && end-start > widths[c] {
				widths[c] = end - start
			}
			start = end
		}
	}

	var line []byte
	titles := make([]byte, 0, 128)
	var titleEnds []int
	for _, col := range cols {
		titles = append(titles, col.Title...)
		titleEnds = append(titleEnds, len(titles))
	}
	line = appendAligned(line[:0], cols, widths, titles, titleEnds)
	if _, err := w.Write(line); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		buf, ends = row(i, buf[:0], ends[:0])
		line = appendAligned(line[:0], cols, widths, buf, ends)
		if _, err := w.Write(line); err != nil {
			return err
		}
	}
	return nil
}

func appendAligned(line []byte, cols []Column, widths []int, cells []byte, ends []int) []byte {
	start := 0
	last := len(ends) - 1
	for c, end := range ends {
		cell := cells[start:end]
		start = end
		pad := 0
		if c < len(widths) {
			pad = widths[c] - len(cell)
		}
		right := c < len(cols) && cols[c].Right
		if right {
			line = appendSpaces(line, pad)
		}
		line = append(line, cell...)
		if c == last {
			break
		}
		if !right {
			line = appendSpaces(line, pad)
		}
		line = append(line, ' ', ' ')
	}
	return append(line, '\n')
}

func appendSpaces(b []byte, n int) []byte {
	for ; n > 0; n-- {
		b = append(b, ' ')
	}
	return b
}
